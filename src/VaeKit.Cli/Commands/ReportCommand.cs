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
}
