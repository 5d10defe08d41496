using System.CommandLine;
using Spectre.Console;
using VaeKit.Reporting;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae report RUN [RUN …] [--out FILE] [--prior NAME …]</c>: one self-contained HTML page with curves, grids,
/// config and, with --prior, samples under each prior beside its FD.</summary>
internal static class ReportCommand
{
    private static readonly Argument<string[]> Runs = new("runs") { Description = "Run directories (runs/NAME); several are overlaid", Arity = ArgumentArity.OneOrMore };
    private static readonly Option<string?> Out = new("--out") { Description = "HTML file to write [default: RUN/report.html for one run, report.html for several]" };
    private static readonly Option<string[]> Prior = new Option<string[]>("--prior")
    {
        Description = "Add a generation section: samples drawn now under this prior (standard, or one fitted by vae prior), its fit and the FD vae eval --prior stored; repeat to compare",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    }.Sets(Settings.Eval.Prior);
    private static readonly Option<int> Samples = new Option<int>("--samples") { Description = "Samples per prior and run (with --prior)", DefaultValueFactory = _ => 32 }.Sets(Settings.Eval.Samples);
    private static readonly Option<int> Seed = new("--seed") { Description = "Seed of the draws, the same for every prior and run (with --prior)", DefaultValueFactory = _ => 0 };
    private static readonly Option<string> Checkpoint = new Option<string>("--checkpoint") { Description = "best, last, or a checkpoint file (with --prior)", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
    private static readonly Option<string> Device = new Option<string>("--device") { Description = "cpu, cuda or auto (with --prior)", DefaultValueFactory = _ => "cpu" }.Sets(Settings.Runtime.Device);

    public static Command Create(IAnsiConsole console)
    {
        var command = new Command("report", "Write an HTML report (curves, per-epoch grids, config, and with --prior samples and FD) of one run, or several side by side.")
        {
            Runs, Out, Prior, Samples, Seed, Checkpoint, Device,
        };
        command.SetAction(r =>
        {
            var runs = r.GetValue(Runs)!;
            string output = r.GetValue(Out) ?? (runs.Length == 1 ? Path.Combine(runs[0], "report.html") : "report.html");
            var options = new ReportOptions
            {
                Priors = r.GetValue(Prior) ?? [],
                Samples = r.GetValue(Samples),
                Seed = r.GetValue(Seed),
                Checkpoint = r.GetValue(Checkpoint)!,
                Device = r.GetValue(Device)!,
            };
            HtmlReport.Write(runs, output, options);
            console.MarkupLineInterpolated($"report → {Path.GetFullPath(output)}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
