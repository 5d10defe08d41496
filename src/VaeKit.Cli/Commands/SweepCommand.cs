using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Spectre.Console;
using VaeKit.Evaluation;
using VaeKit.Sweeps;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae sweep</c>: one run per point of a grid of train settings (and optionally AEs), each evaluated, gathered in
/// sweeps/NAME/; here one after another, or on Slurm as one job array (<c>--slurm</c>, then <c>--collect</c>).
/// </summary>
internal static class SweepCommand
{
    private static readonly Option<string?> KlWeights = new Option<string?>("--kl-weights")
    {
        Description = "Comma-separated KL weights, one run each (e.g. 0,0.1,0.5,1,2,5,10); short for --grid kl_weight=…",
    }.Sets(Settings.Sweep.KlWeights);
    private static readonly Option<string[]> Grid = new Option<string[]>("--grid")
    {
        Description = $"An axis KEY=V1,V2,… (repeat for more; the runs are the Cartesian product). Keys: {string.Join(", ", SweepGrid.KeyNames)}. " +
                      "model takes any registered family (model=vae,sigma-vae,vq-vae); model_option.KEY varies a family option (model_option.sigma=optimal,learned); " +
                      "widths are written 16x32x64; seed=0,1,2 repeats each setting and the summary gives mean ± std over seeds",
        HelpName = "KEY=V1,V2,…",
    }.Sets(Settings.Sweep.Grid);
    private static readonly Option<bool> WithAe = new Option<bool>("--with-ae") { Description = "Add plain AE runs (no KL term) as reference rows, one per setting of the axes that matter to an AE" }.Sets(Settings.Sweep.WithAe);
    private static readonly Option<string> SweepsDir = new Option<string>("--sweeps-dir") { Description = "Where sweeps are written", DefaultValueFactory = _ => "sweeps" }.Sets(Settings.Sweep.SweepsDirectory);
    private static readonly Option<int?> EvalLimit = new Option<int?>("--eval-limit") { Description = "Evaluate each run on the first N validation images only (Fashion-MNIST has 10,000) [default: all]" }.Sets(Settings.Eval.Limit);
    private static readonly Option<int> Samples = new Option<int>("--eval-samples") { Description = "Posterior samples k per image for the ELBO and NLL bound", DefaultValueFactory = _ => new EvalOptions().ImportanceSamples }.Sets(Settings.Eval.Samples);
    private static readonly Option<bool> SlurmOption = new Option<bool>("--slurm") { Description = "Submit the unfinished runs to Slurm as one job array (sbatch --array) instead of running them here" }.Sets(Settings.Sweep.Slurm);
    private static readonly Option<string?> SlurmOpts = new Option<string?>("--slurm-opts") { Description = "With --slurm: extra sbatch options, e.g. \"--gres=gpu:1 --time=2:00:00 --partition=gpu\"" }.Sets(Settings.Sweep.SlurmOptions);
    private static readonly Option<string?> Dir = new Option<string?>("--dir") { Description = "An existing sweep directory (sweeps/NAME): continue it, --collect it, or run one --task of it; its plan.json holds the settings" }.Sets(Settings.Sweep.Directory);
    private static readonly Option<bool> CollectOption = new("--collect") { Description = "With --dir: write the summary when every run is finished; otherwise list the unfinished runs and their Slurm logs" };
    private static readonly Option<int?> Task = new Option<int?>("--task") { Description = "With --dir: train and evaluate run N only (what each Slurm array task runs)" }.Sets(Settings.Sweep.Task);

    public static Command Create(IAnsiConsole console) => Create(console, new ModelOptions());

    /// <summary>The command with its model flags in <paramref name="models"/>, which <see cref="ToPlan"/> reads back.</summary>
    internal static Command Create(IAnsiConsole console, ModelOptions models)
    {
        var command = new Command("sweep",
            "Train one run per point of a grid of train settings (--grid KEY=V1,V2,…, or --kl-weights) with the same data and budget " +
            "(any train flag applies to all), evaluate each, and write sweeps/NAME/ (summary.csv/json, rate-distortion plot, grids, index.html). " +
            "Runs here one after another, or on Slurm with --slurm. Run it again with the same --name (or --dir) to continue.");
        command.Options.Add(KlWeights);
        command.Options.Add(Grid);
        command.Options.Add(WithAe);
        command.Options.Add(TrainCommand.DataOption);
        models.AddTo(command);
        foreach (var option in TrainCommand.ExperimentOptions)
            command.Options.Add(option);
        foreach (var option in new Option[] { SweepsDir, Samples, EvalLimit, SlurmOption, SlurmOpts, Dir, CollectOption, Task })
            command.Options.Add(option);
        command.SetAction(r => Execute(r, models, console));
        return command;
    }

    /// <summary>Flags → the sweep; pure but for the clock, which is passed in (CommandConfigTests).</summary>
    internal static SweepPlan ToPlan(ParseResult r, ModelOptions models, DateTimeOffset now)
    {
        var config = TrainCommand.ToConfig(r, models, now);
        var axes = new List<SweepAxis>();
        if (r.GetValue(KlWeights) is string weights) axes.Add(SweepGrid.ParseAxis("kl_weight=" + weights, Settings.Sweep.KlWeights));
        foreach (var text in r.GetValue(Grid) ?? []) axes.Add(SweepGrid.ParseAxis(text));
        var given = r.CommandResult.Children.OfType<OptionResult>().Where(o => !o.Implicit)
                     .Select(o => SettingFlags.KeyOf(o.Option)).OfType<SettingKey>().ToHashSet();   // the settings flags gave
        foreach (var axis in axes)
            if (given.Contains(SweepGrid.SettingOf(axis.Key)))
                throw new BadInputException($"{SweepGrid.SettingOf(axis.Key)} and the {axis.Key} axis both set {axis.Key}; drop one.");
        return new SweepPlan
        {
            Name = config.Name, Base = config, Axes = axes, IncludeAe = r.GetValue(WithAe),
            Eval = new EvalOptions { ImportanceSamples = r.GetValue(Samples), Limit = r.GetValue(EvalLimit) },
        }.Validate();
    }

    private static HashSet<string> GivenOptions(ParseResult r) =>
        r.CommandResult.Children.OfType<OptionResult>().Where(o => !o.Implicit).Select(o => o.Option.Name).ToHashSet();

    private static int Execute(ParseResult r, ModelOptions models, IAnsiConsole console)
    {
        var given = GivenOptions(r);
        bool gridFlags = given.Contains(Grid.Name) || given.Contains(KlWeights.Name);
        string? dirText = r.GetValue(Dir);
        if (given.Contains(SlurmOpts.Name) && !r.GetValue(SlurmOption))
            throw new BadInputException("--slurm-opts only makes sense with --slurm.");
        if ((r.GetValue(Task) is not null || r.GetValue(CollectOption)) && dirText is null)
            throw new BadInputException($"{(r.GetValue(CollectOption) ? "--collect" : "--task")} needs --dir sweeps/NAME (the sweep's directory).");
        if (dirText is not null && gridFlags)
            throw new BadInputException("--dir continues a sweep with the settings in its plan.json; leave out --grid and --kl-weights (or drop --dir to start a sweep).");
        if (dirText is null && !gridFlags)
            throw new BadInputException("Give the grid: --grid KEY=V1,V2,… (e.g. --grid kl_weight=0.1,1,10 --grid latent=16,32) or --kl-weights 0.1,1,10; or --dir sweeps/NAME to continue a sweep.");
        if (r.GetValue(Task) is not null && (r.GetValue(CollectOption) || r.GetValue(SlurmOption)))
            throw new BadInputException("--task runs one run here; it does not go with --collect or --slurm.");

        void Say(string line) => console.MarkupLineInterpolated($"[bold]{line}[/]");
        RunResult Host(Func<IRunCallback, RunResult> work) => ConsoleListeners.Run(console, work);

        SweepPlan plan;
        SweepDirectory dir;
        if (dirText is not null)
        {
            dir = new SweepDirectory(dirText);
            if (r.GetValue(Task) is int task)
            {
                using var taskStop = new StopSignals();
                var outcome = Sweep.RunTask(dir, task, Host, Say, taskStop.Token);
                if (outcome.Outcome == RunOutcome.Interrupted)
                {
                    console.MarkupLineInterpolated($"[yellow]{(outcome.Message is { } m ? SettingFlags.Render(m, r.CommandResult.Command) : "")}[/]");
                    return ExitCodes.Interrupted;
                }
                console.MarkupLineInterpolated($"[green]task {task} done[/]: {outcome.Row!.Label} {outcome.Row.Status}");
                return ExitCodes.Ok;
            }
            plan = Sweep.Load(dir);
            if (r.GetValue(CollectOption)) return Report(console, r.CommandResult.Command, Sweep.Collect(plan, dir, Say));
        }
        else
        {
            plan = ToPlan(r, models, DateTimeOffset.Now);
            dir = Sweep.Prepare(plan, r.GetValue(SweepsDir)!);
        }

        if (r.GetValue(SlurmOption))
            return Report(console, r.CommandResult.Command, Sweep.Submit(plan, dir, SelfCommand(), Slurm.SplitOptions(r.GetValue(SlurmOpts)), TaskOptions(r), Say));
        using var stop = new StopSignals();
        return Report(console, r.CommandResult.Command, Sweep.Run(plan, dir, Host, Say, stop.Token));
    }

    /// <summary>
    /// This very program, as the Slurm tasks must start it: the <c>vae</c> executable (or a single-file publish), or
    /// <c>dotnet</c> and this assembly when it runs as <c>dotnet vae.dll</c> or inside another host (a test run).
    /// </summary>
    internal static IReadOnlyList<string> SelfCommand()
    {
        string process = Environment.ProcessPath ?? throw new BadInputException("Cannot tell which program this is (no process path), so Slurm tasks cannot start it.");
        string assembly = typeof(SweepCommand).Assembly.Location;   // empty in a single-file publish
        if (assembly.Length == 0 || Path.GetFileNameWithoutExtension(process) == Path.GetFileNameWithoutExtension(assembly))
            return [process];
        string dotnet = Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? process
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        return [dotnet, assembly];
    }

    /// <summary>Options the tasks must see as this process did: the libtorch it was told to use.</summary>
    private static IReadOnlyList<string> TaskOptions(ParseResult r) =>
        r.GetValue<string?>("--libtorch") is { Length: > 0 } libtorch
            ? ["--libtorch", libtorch == "python" ? libtorch : Path.GetFullPath(libtorch)]
            : [];

    private static int Report(IAnsiConsole console, Command command, SweepResult result)
    {
        string Text(SettingText? message) => message is null ? "" : SettingFlags.Render(message, command);
        switch (result.Outcome)
        {
            case SweepOutcome.Interrupted:
                console.MarkupLineInterpolated($"[yellow]{Text(result.Message)}[/]");
                return ExitCodes.Interrupted;
            case SweepOutcome.Submitted:
                console.MarkupLineInterpolated($"[green]{Text(result.Message)}[/]");
                console.MarkupLineInterpolated($"When squeue no longer lists job {result.JobId}: vae sweep --collect --dir {result.Directory}");
                return ExitCodes.Ok;
            case SweepOutcome.Incomplete:
                PrintTasks(console, result.Tasks);
                console.MarkupLineInterpolated($"[yellow]{Text(result.Message)}[/]");
                return ExitCodes.Failure;
            default:
                PrintSummary(console, result);
                return ExitCodes.Ok;
        }
    }

    private static void PrintTasks(IAnsiConsole console, IReadOnlyList<SweepTaskStatus> tasks)
    {
        var table = new Table();
        foreach (var name in new[] { "task", "run", "state", "slurm log" })
            table.AddColumn(new TableColumn(name).NoWrap());
        foreach (var t in tasks.Where(t => !t.Finished))
            table.AddRow(t.Entry.Index.ToString(CultureInfo.InvariantCulture), Markup.Escape(t.Entry.RunName), Markup.Escape(t.State),
                         Markup.Escape(t.Log ?? (t.State == "not run" ? "–" : "(no log: the task never started)")));
        console.Write(table);
    }

    private static void PrintSummary(IAnsiConsole console, SweepResult result)
    {
        static string F(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "–";
        var table = new Table();
        foreach (var name in new[] { "run", "mse", "psnr", "ssim", "kl", "active", "bits/dim", "fréchet", "q(z)", "fd", "fd floor", "kid", "prec.", "recall" })
            table.AddColumn(new TableColumn(name).RightAligned().NoWrap());
        foreach (var row in result.Rows)
            table.AddRow(Markup.Escape(row.Status == "completed" ? row.Label : $"{row.Label} ({row.Status})"), F(row.Mse, "F5"), F(row.Psnr, "F2"),
                         F(row.Ssim, "F3"), F(row.Kl, "F2"), row.ActiveUnits?.ToString(CultureInfo.InvariantCulture) ?? "–",
                         F(row.NllBitsPerDim, "F4"), F(row.Frechet, "F2"), F(row.FrechetAggregate, "F2"),
                         F(row.Fd, "F2"), F(row.FdFloor, "F2"), F(row.Kid, "F4"), F(row.Precision, "F2"), F(row.Recall, "F2"));
        console.Write(table);
        console.MarkupLine("mse per pixel, psnr dB, kl nats per image, bits/dim: the NLL bound; fréchet: N(0, I) vs the codes, q(z): vs the aggregate posterior; fd: image-space FD of samples vs the validation images, fd floor: real vs real at the same N; kid: unbiased kernel distance of the same samples; prec./recall: their fidelity and diversity (k = 3)");
        if (result.Rows.Any(r => r.Settings.ContainsKey(SweepGrid.SeedKey)))
            console.MarkupLineInterpolated($"mean ± std over seeds per setting: {Path.Combine(result.Directory, "summary_over_seeds.csv")}");
        console.MarkupLineInterpolated($"[green]done[/] → {result.Directory}  (open {Path.Combine(result.Directory, "index.html")})");
    }
}
