using PuppeteerSharp;
using PuppeteerSharp.Input;
using SkiaSharp;
using VaeKit.Cli.Serving;
using VaeKit.Serving;
using VaeKit.Tests.Reporting;

namespace VaeKit.Tests.Serving;

/// <summary>
/// The page in a real browser: Debian's chromium, driven by PuppeteerSharp over the DevTools protocol (no browser
/// download), against the fixture's server with a VAE and an AE side by side.
/// </summary>
[Collection("serve")]
public class ServeBrowserTests(ServeFixture fx, Xunit.Abstractions.ITestOutputHelper log)
{
    /// <summary>Where the screenshot goes: $VAEKIT_SERVE_SCREENSHOT (docs/serve.png is made that way), else /tmp.</summary>
    private static string ScreenshotPath =>
        Environment.GetEnvironmentVariable("VAEKIT_SERVE_SCREENSHOT") is { Length: > 0 } path ? path : Path.Combine(Path.GetTempPath(), "vaekit-serve.png");

    [FactRequiring(Package.Chromium)]
    public async Task Moving_a_slider_redraws_the_decode_and_an_upload_shows_its_reconstruction_without_console_errors()
    {
        await using var browser = await Chromium(Path.Combine(fx.Root, "chromium-profile"));
        await using var page = await browser.NewPageAsync();
        await page.SetViewportAsync(new ViewPortOptions { Width = 1200, Height = 900 });
        var problems = new List<string>();
        page.Console += (_, e) => { if (e.Message.Type is ConsoleType.Error or ConsoleType.Warning) problems.Add($"console {e.Message.Type}: {e.Message.Text}"); };
        page.PageError += (_, e) => problems.Add($"page error: {e.Message}");
        page.RequestFailed += (_, e) => problems.Add($"request failed: {e.Request.Url}");

        await page.GoToAsync(fx.Host.Address.AbsoluteUri, WaitUntilNavigation.Load);
        await page.WaitForSelectorAsync("body[data-ready='1']", new WaitForSelectorOptions { Timeout = 30_000 });
        Assert.Equal(2, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('section.card').length"));
        Assert.Equal(8, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('section.card[data-run=\"0\"] input[type=range]').length"));
        string before = await ImagePixels(page, 0);

        // Drag the first slider of the VAE to its right end with the mouse, as a user would.
        var slider = await page.QuerySelectorAsync("section.card[data-run='0'] input[type=range]");
        var box = await slider.BoundingBoxAsync();
        int decodes = await Decodes(page, 0);
        await page.Mouse.MoveAsync(box.X + box.Width / 2, box.Y + box.Height / 2);
        await page.Mouse.DownAsync();
        await page.Mouse.MoveAsync(box.X + box.Width - 1, box.Y + box.Height / 2, new MoveOptions { Steps = 8 });
        await page.Mouse.UpAsync();
        await page.WaitForFunctionAsync($"() => Number(document.querySelector('section.card[data-run=\"0\"]').dataset.decodes) > {decodes}",
                                        new WaitForFunctionOptions { Timeout = 15_000 });
        await page.WaitForNetworkIdleAsync(new WaitForNetworkIdleOptions { IdleTime = 300 });
        string after = await ImagePixels(page, 0);
        Assert.NotEqual(before, after);
        // Same latent size: the move sent the VAE's code to the AE too, which decoded it.
        Assert.True(await page.EvaluateExpressionAsync<bool>("document.getElementById('link').checked"));

        // Upload an image through the file input: every run shows it and its reconstruction.
        string upload = Path.Combine(fx.Root, "upload.png");
        using (var bitmap = new SKBitmap(90, 120))
        {
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(SKColors.LightYellow);
                using var paint = new SKPaint { Color = SKColors.DarkSlateBlue };
                canvas.DrawCircle(45, 60, 30, paint);
            }
            using var png = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(upload, png.ToArray());
        }
        var file = await page.QuerySelectorAsync("#file");
        await file.UploadFileAsync(upload);
        await page.WaitForSelectorAsync("section.card[data-run='0'][data-encoded='1']", new WaitForSelectorOptions { Timeout = 15_000 });
        await page.WaitForSelectorAsync("section.card[data-run='1'][data-encoded='1']", new WaitForSelectorOptions { Timeout = 15_000 });
        Assert.True(await page.EvaluateExpressionAsync<bool>(
            "[...document.querySelectorAll('img.decoded')].every(i => i.src.startsWith('data:image/png') && i.complete && i.naturalWidth === 32)"));
        Assert.NotEqual(after, await ImagePixels(page, 0));

        // A second image from the examples fills slot B; interpolation draws one strip per run.
        await page.ClickAsync("#examples img");
        await page.WaitForFunctionAsync("() => !document.getElementById('interpolate').disabled", new WaitForFunctionOptions { Timeout = 15_000 });
        await page.SelectAsync("#mode", "slerp");
        await page.ClickAsync("#interpolate");
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('img.strip')].every(i => i.complete && i.naturalWidth > 200)",
                                        new WaitForFunctionOptions { Timeout = 15_000 });

        await page.WaitForNetworkIdleAsync(new WaitForNetworkIdleOptions { IdleTime = 300 });
        await page.ScreenshotAsync(ScreenshotPath, new ScreenshotOptions { FullPage = true });
        log.WriteLine($"screenshot: {ScreenshotPath}");
        Assert.Equal("", await page.EvaluateExpressionAsync<string>("document.getElementById('note').className"));
        Assert.Empty(problems);
    }

    private static Task<IBrowser> Chromium(string profile) => Puppeteer.LaunchAsync(new LaunchOptions
    {
        ExecutablePath = "/usr/bin/chromium",
        Headless = true,
        Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        UserDataDir = profile,
    });

    /// <summary>
    /// Not a check: remakes docs/serve.png from a real run or sweep when VAEKIT_SERVE_DOCS names one
    /// (<c>VAEKIT_SERVE_DOCS=runs/NAME dotnet test --filter FullyQualifiedName~Docs_screenshot</c>; bench/front-page-pictures.sh).
    /// </summary>
    [DocsScreenshotFact]
    public async Task Docs_screenshot()
    {
        // A sweep directory (its plan.json) serves all its runs, as vae serve --sweep; anything else is one run.
        string target = Environment.GetEnvironmentVariable("VAEKIT_SERVE_DOCS")!;
        var served = File.Exists(Path.Combine(target, "plan.json")) ? ServedRuns.Resolve([], target) : ServedRuns.Resolve([target], null);
        var models = served.Select(r => ServedModel.Load(r.Directory, r.Label)).ToList();
        try
        {
            await using var host = await ServeHost.StartAsync(models, new ServeOptions { Port = 0 }, TextWriter.Null);
            using var profile = new TempDir();
            await using var browser = await Chromium(profile.Path);
            await using var page = await browser.NewPageAsync();
            await page.SetViewportAsync(new ViewPortOptions { Width = 330 * models.Count + 40 < 1000 ? 1000 : 330 * models.Count + 40, Height = 760 });
            await page.GoToAsync(host.Address.AbsoluteUri, WaitUntilNavigation.Load);
            await page.WaitForSelectorAsync("body[data-ready='1']", new WaitForSelectorOptions { Timeout = 60_000 });
            var examples = await page.QuerySelectorAllAsync("#examples img");
            await examples[1].ClickAsync();
            await page.WaitForFunctionAsync("() => document.querySelectorAll('section.card[data-encoded]').length > 0");
            await examples[5].ClickAsync();
            await page.WaitForFunctionAsync("() => !document.getElementById('interpolate').disabled");
            await page.SelectAsync("#mode", "slerp");
            await page.ClickAsync("#interpolate");
            await page.WaitForFunctionAsync("() => [...document.querySelectorAll('img.strip')].every(i => i.complete && i.naturalWidth > 200)");
            await page.WaitForNetworkIdleAsync(new WaitForNetworkIdleOptions { IdleTime = 500 });
            string png = Path.Combine(Requirements.RepositoryRoot, "docs", "serve.png");
            await page.ScreenshotAsync(png, new ScreenshotOptions { FullPage = true });
            log.WriteLine($"wrote {png}");
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }

    private static Task<int> Decodes(IPage page, int run) =>
        page.EvaluateExpressionAsync<int>($"Number(document.querySelector('section.card[data-run=\"{run}\"]').dataset.decodes || 0)");

    /// <summary>The decoded image's pixels as the browser drew them (a canvas read-back, base64).</summary>
    private static Task<string> ImagePixels(IPage page, int run) => page.EvaluateFunctionAsync<string>(@"async run => {
        const img = document.querySelector(`section.card[data-run='${run}'] img.decoded`);
        await img.decode();
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        return btoa(String.fromCharCode(...context.getImageData(0, 0, canvas.width, canvas.height).data));
    }", run);
}

/// <summary>Runs only when VAEKIT_SERVE_DOCS names a run or sweep and chromium is installed (it makes a picture, it checks nothing).</summary>
public sealed class DocsScreenshotFactAttribute : FactAttribute
{
    public DocsScreenshotFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("VAEKIT_SERVE_DOCS")))
            Skip = "makes docs/serve.png; set VAEKIT_SERVE_DOCS=runs/NAME (or sweeps/NAME) to run it (bench/front-page-pictures.sh does)";
        else if (Requirements.SkipReason(Package.Chromium) is { } reason)
            Skip = reason;
    }
}
