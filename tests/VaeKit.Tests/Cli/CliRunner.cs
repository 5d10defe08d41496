using VaeKit.Cli;

namespace VaeKit.Tests.Cli;

/// <summary>Runs the real command tree in-process with captured, non-interactive output.</summary>
internal static class CliRunner
{
    public static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = Terminal.Plain(output);   // what `vae … > file` gets
        int exit = VaeCli.Run(args, console, error);
        return (exit, output.ToString(), error.ToString());
    }

    private static readonly System.CommandLine.RootCommand Root = VaeCli.CreateRoot(Terminal.Plain(TextWriter.Null));

    /// <summary>A library message as <c>vae COMMAND</c> prints it: its settings in that command's flags.</summary>
    public static string AsPrintedBy(string command, SettingText text) =>
        SettingFlags.Render(text, Root.Subcommands.Single(c => c.Name == command));
}
