using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using VaeKit.Evaluation;
using VaeKit.Sweeps;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae sweep</c>: one run per kl_weight (and optionally an AE), each evaluated, gathered in sweeps/NAME/.</summary>
internal static class SweepCommand
{
    private static readonly Option<string> KlWeights = new("--kl-weights")
    {
        Description = "Comma-separated KL weights, one run each (e.g. 0,0.1,0.5,1,2,5,10)", Required = true,
    };
    private static readonly Option<bool> WithAe = new("--with-ae") { Description = "Add a plain AE run (no KL term) as a reference row" };
    private static readonly Option<string> SweepsDir = new("--sweeps-dir") { Description = "Where sweeps are written", DefaultValueFactory = _ => "sweeps" };
    private static readonly Option<int?> EvalLimit = new("--eval-limit") { Description = "Evaluate each run on the first N validation images only (Fashion-MNIST has 10,000) [default: all]" };
    private static readonly Option<int> Samples = new("--eval-samples") { Description = "Posterior samples k per image for the ELBO and NLL bound", DefaultValueFactory = _ => new EvalOptions().ImportanceSamples };

    public static Command Create(IAnsiConsole console)
    {
        var models = new ModelOptions();
        var command = new Command("sweep",
            "Train one run per --kl-weights value with the same data, seed and budget (any train flag applies to all), evaluate each, " +
            "and write sweeps/NAME/ (summary.csv/json, rate-distortion plot, grids, index.html). Run it again with the same --name to continue.");
        command.Options.Add(KlWeights);
        command.Options.Add(WithAe);
        command.Options.Add(TrainCommand.DataOption);
        models.AddTo(command);
        foreach (var option in TrainCommand.ExperimentOptions.Where(o => o.Name != "--kl-weight"))   // --kl-weights sets it per run
            command.Options.Add(option);
        command.Options.Add(SweepsDir);
        command.Options.Add(Samples);
        command.Options.Add(EvalLimit);
        command.SetAction(r => Execute(r, models, console));
        return command;
    }

    /// <summary>Flags → the sweep (pure; unit-tested).</summary>
    internal static SweepPlan ToPlan(ParseResult r, ModelOptions models, DateTimeOffset now)
    {
        var config = TrainCommand.ToConfig(r, models, now);
        var weights = new List<double>();
        foreach (var part in r.GetValue(KlWeights)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double w))
                throw new BadInputException($"--kl-weights: '{part}' is not a number; give a list like 0,0.1,0.5,1,2,5,10.");
            weights.Add(w);
        }
        return new SweepPlan
        {
            Name = config.Name, Base = config, KlWeights = weights, IncludeAe = r.GetValue(WithAe),
            Eval = new EvalOptions { ImportanceSamples = r.GetValue(Samples), Limit = r.GetValue(EvalLimit) },
        }.Validate();
    }

    private static int Execute(ParseResult r, ModelOptions models, IAnsiConsole console)
    {
        var plan = ToPlan(r, models, DateTimeOffset.Now);
        using var stop = new StopSignals();
        var result = Sweep.Run(plan, r.GetValue(SweepsDir)!, work => ConsoleListeners.Run(console, work),
                               line => console.MarkupLineInterpolated($"[bold]{line}[/]"), stop.Token);
        if (result.Outcome == RunOutcome.Interrupted)
        {
            console.MarkupLineInterpolated($"[yellow]{result.Message}[/]");
            return ExitCodes.Interrupted;
        }
        PrintSummary(console, result);
        return ExitCodes.Ok;
    }

    private static void PrintSummary(IAnsiConsole console, SweepResult result)
    {
        static string F(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "–";
        var table = new Table();
        foreach (var name in new[] { "run", "mse", "psnr", "ssim", "kl", "active", "bits/dim", "fréchet", "q(z)" })
            table.AddColumn(new TableColumn(name).RightAligned().NoWrap());
        foreach (var row in result.Rows)
            table.AddRow(Markup.Escape(row.Status == "completed" ? row.Label : $"{row.Label} ({row.Status})"), F(row.Mse, "F5"), F(row.Psnr, "F2"),
                         F(row.Ssim, "F3"), F(row.Kl, "F2"), row.ActiveUnits?.ToString(CultureInfo.InvariantCulture) ?? "–",
                         F(row.NllBitsPerDim, "F4"), F(row.Frechet, "F2"), F(row.FrechetAggregate, "F2"));
        console.Write(table);
        console.MarkupLine("mse per pixel, psnr dB, kl nats per image, bits/dim: the NLL bound; fréchet: N(0, I) vs the codes, q(z): vs the aggregate posterior");
        console.MarkupLineInterpolated($"[green]done[/] → {result.Directory}  (open {Path.Combine(result.Directory, "index.html")})");
    }
}
