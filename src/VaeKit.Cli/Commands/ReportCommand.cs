using System.CommandLine;
using Spectre.Console;
using VaeKit.Reporting;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae report RUN [RUN …] [--out FILE]</c>: one self-contained HTML page with curves, grids and config.</summary>
internal static class ReportCommand
{
    private static readonly Argument<string[]> Runs = new("runs") { Description = "Run directories (runs/NAME); several are overlaid", Arity = ArgumentArity.OneOrMore };
    private static readonly Option<string?> Out = new("--out") { Description = "HTML file to write [default: RUN/report.html for one run, report.html for several]" };

    public static Command Create(IAnsiConsole console)
    {
        var command = new Command("report", "Write an HTML report (curves, per-epoch grids, config) of one run, or several side by side.")
        {
            Runs, Out,
        };
        command.SetAction(r =>
        {
            var runs = r.GetValue(Runs)!;
            string output = r.GetValue(Out) ?? (runs.Length == 1 ? Path.Combine(runs[0], "report.html") : "report.html");
            HtmlReport.Write(runs, output);
            console.MarkupLineInterpolated($"report → {Path.GetFullPath(output)}");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The end of every <c>vae train</c>: RUN/report.html. A failure here must not fail the training run.</summary>
    internal static void WriteAfterTraining(string runDirectory, IAnsiConsole console)
    {
        string output = Path.Combine(runDirectory, "report.html");
        try
        {
            HtmlReport.Write([runDirectory], output);
            console.MarkupLineInterpolated($"  report: {output}");
        }
        catch (Exception e) when (e is BadInputException or IOException or UnauthorizedAccessException)
        {
            console.MarkupLineInterpolated($"[yellow]warning: no HTML report ({e.Message})[/]");
        }
    }
}
