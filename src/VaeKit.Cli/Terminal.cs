using Spectre.Console;

namespace VaeKit.Cli;

/// <summary>
/// The console <c>vae</c> writes to. On a terminal: colours and live progress bars (finished bars are removed). Into a
/// file or a pipe (<c>vae train &gt; train.log 2&gt;&amp;1</c>, the usual way on a cluster): plain text, no ANSI
/// codes, never wrapped, one line per event, so a log reads and greps like a log.
/// </summary>
internal static class Terminal
{
    /// <summary>Lines are never wrapped into a file: wider than any line VaeKit writes.</summary>
    public const int UnwrappedWidth = 100_000;

    public static IAnsiConsole Console()
    {
        if (!System.Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not "dumb")
            return AnsiConsole.Console;
        return Plain(System.Console.Out);
    }

    /// <summary>A console that writes plain, unwrapped text to <paramref name="writer"/>.</summary>
    public static IAnsiConsole Plain(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = UnwrappedWidth;
        return console;
    }
}
