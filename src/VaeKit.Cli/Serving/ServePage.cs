namespace VaeKit.Cli.Serving;

/// <summary>The one page <c>vae serve</c> serves (ServePage.html, an embedded resource): plain HTML, CSS and script, nothing fetched from elsewhere.</summary>
internal static class ServePage
{
    public static string Html { get; } = Load();

    private static string Load()
    {
        using var stream = typeof(ServePage).Assembly.GetManifestResourceStream("VaeKit.Cli.Serving.ServePage.html")
                           ?? throw new InvalidOperationException("ServePage.html is not embedded in this build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
