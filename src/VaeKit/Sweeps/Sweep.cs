using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Evaluation;
using VaeKit.Training;

namespace VaeKit.Sweeps;

/// <summary>
/// What <c>vae sweep</c> runs: the same experiment (<see cref="Base"/>: data, seed, budget) once per KL weight, and
/// optionally once as a plain AE.
/// </summary>
public sealed record SweepPlan
{
    public required string Name { get; init; }
    /// <summary>Every run's configuration but its name, kl_weight and model kind.</summary>
    public required RunConfig Base { get; init; }
    public required IReadOnlyList<double> KlWeights { get; init; }
    public bool IncludeAe { get; init; }
    public EvalOptions Eval { get; init; } = new();

    /// <summary>The runs in order: one per KL weight, then the AE.</summary>
    public IReadOnlyList<SweepEntry> Entries()
    {
        var entries = KlWeights.Select(w => new SweepEntry($"β {Format(w)}", "vae", w, $"kl-{Format(w)}")).ToList();
        if (IncludeAe) entries.Add(new SweepEntry("AE", "ae", null, "ae"));
        return entries;
    }

    /// <summary>The configuration of one entry's run.</summary>
    public RunConfig ConfigFor(SweepEntry entry) => Base with
    {
        Name = entry.RunName,
        Model = Base.Model with { Kind = entry.Model == "ae" ? ModelKinds.Ae : ModelKinds.Vae },
        Train = Base.Train with { KlWeight = entry.KlWeight ?? Base.Train.KlWeight },
    };

    public SweepPlan Validate()
    {
        if (KlWeights.Count == 0 && !IncludeAe) throw new BadInputException("--kl-weights needs at least one value, e.g. --kl-weights 0,0.1,0.5,1,2,5,10.");
        foreach (var w in KlWeights)
            if (!(w >= 0) || double.IsInfinity(w)) throw new BadInputException($"--kl-weights must be 0 or more (got {w}).");
        if (KlWeights.Distinct().Count() != KlWeights.Count) throw new BadInputException("--kl-weights lists a value twice.");
        if (Base.Model.Kind != ModelKinds.Vae) throw new BadInputException("A sweep over kl_weight trains VAEs; add a plain AE row with --with-ae instead of --model ae.");
        Eval.Validate();
        return this;
    }

    /// <summary>The settings that make two invocations the same sweep (hardware and the name are not among them).</summary>
    internal string Identity() => new JsonObject
    {
        ["kl_weights"] = new JsonArray(KlWeights.Select(w => JsonValue.Create(w)).ToArray<JsonNode?>()),
        ["with_ae"] = IncludeAe,
        ["model"] = JsonSerializer.SerializeToNode(Base.Model, Json.Compact),
        ["train"] = JsonSerializer.SerializeToNode(Base.Train, Json.Compact),
        ["data"] = JsonSerializer.SerializeToNode(Base.Data with { Fingerprint = null }, Json.Compact),
        ["eval"] = JsonSerializer.SerializeToNode(Eval, Json.Compact),
    }.ToJsonString(Json.Compact);

    public static string Format(double w) => w.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>One run of a sweep: a label for tables, the model kind, its kl_weight (null for the AE), its directory name.</summary>
public sealed record SweepEntry(string Label, string Model, double? KlWeight, string RunName);

/// <summary>One line of summary.csv / summary.json.</summary>
public sealed record SweepRow
{
    public required string Label { get; init; }
    public required string Model { get; init; }
    public double? KlWeight { get; init; }
    public required string Run { get; init; }
    /// <summary>completed or diverged.</summary>
    public required string Status { get; init; }
    public long Steps { get; init; }
    public double TrainSeconds { get; init; }
    public double? Mse { get; init; }
    public double? Psnr { get; init; }
    public double? Ssim { get; init; }
    public double? Kl { get; init; }
    public int? ActiveUnits { get; init; }
    public double? ElboNats { get; init; }
    public double? NllNats { get; init; }
    public double? NllBitsPerDim { get; init; }
    public double? Frechet { get; init; }
    public double? FrechetAggregate { get; init; }
}

public sealed record SweepResult(RunOutcome Outcome, string Directory, IReadOnlyList<SweepRow> Rows, string? Message);

/// <summary>
/// Runs a <see cref="SweepPlan"/> into sweeps/NAME/: runs/ (one run directory per entry, each with eval.json),
/// grids/, summary.csv, summary.json, rate_distortion.png and index.html. Running the same plan again continues it:
/// runs with an eval.json are not redone, an interrupted run is resumed from its last checkpoint.
/// </summary>
public static class Sweep
{
    /// <param name="host">Runs one training with a listener (the CLI's progress display).</param>
    /// <param name="message">Progress lines ("run 2 of 7: …").</param>
    public static SweepResult Run(SweepPlan plan, string sweepsRoot, Func<Func<IRunCallback, RunResult>, RunResult> host,
                                  Action<string> message, CancellationToken cancellationToken)
    {
        plan.Validate();
        if (string.IsNullOrWhiteSpace(sweepsRoot)) throw new BadInputException("--sweeps-dir is empty; give a directory.");
        var dir = new SweepDirectory(Path.Combine(sweepsRoot, plan.Name));
        CheckSamePlan(dir, plan);

        var entries = plan.Entries();
        var rows = new List<SweepRow>();
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var config = plan.ConfigFor(entry);
            var run = new RunDirectory(Path.Combine(dir.Runs, entry.RunName));
            string report = Evaluator.ReportPath(run);
            if (File.Exists(report) && IsSweepEvaluation(EvalReport.Load(report), run, plan.Eval))
            {
                message($"run {i + 1} of {entries.Count}: {entry.Label} — finished earlier, not redone ({run.Path})");
                rows.Add(Row(entry, run, EvalReport.Load(report), "completed"));
                continue;
            }

            message($"run {i + 1} of {entries.Count}: {entry.Label} → {run.Path}");
            if (!Completed(run))
            {
                var result = File.Exists(run.Last)
                    ? host(listener => TrainingRun.Resume(new ResumeOptions
                        {
                            RunDirectory = run.Path, Device = config.Runtime.Device, Threads = config.Runtime.Threads,
                        }, listener, cancellationToken))
                    : host(listener => TrainingRun.Train(config, dir.Runs, listener, cancellationToken));
                if (result.Outcome == RunOutcome.Interrupted)
                    return new SweepResult(RunOutcome.Interrupted, dir.Path, rows,
                        $"Interrupted in run {i + 1} of {entries.Count}; run the same command again (same --name) to continue the sweep.");
                if (result.Outcome == RunOutcome.Diverged)
                {
                    message($"run {i + 1} of {entries.Count}: {entry.Label} diverged: {result.Message}");
                    rows.Add(new SweepRow { Label = entry.Label, Model = entry.Model, KlWeight = entry.KlWeight, Run = run.Path, Status = "diverged", Steps = result.Step });
                    continue;
                }
            }
            message($"run {i + 1} of {entries.Count}: evaluating {entry.Label}");
            // The last checkpoint, not the best: every run gets the same budget, and "best" is chosen by a loss that
            // itself depends on kl_weight.
            var eval = Evaluator.EvaluateRun(run.Path, null, plan.Eval, "last", config.Runtime.Device);
            rows.Add(Row(entry, run, eval, "completed"));
        }

        message("writing grids, plot and summary");
        SweepOutputs.Write(dir, plan, entries, rows);
        return new SweepResult(RunOutcome.Completed, dir.Path, rows, null);
    }

    private static SweepRow Row(SweepEntry entry, RunDirectory run, EvalReport e, string status)
    {
        var header = File.Exists(run.Last) ? Checkpoint.ReadHeader(run.Last) : null;
        return new SweepRow
        {
            Label = entry.Label, Model = entry.Model, KlWeight = entry.KlWeight, Run = run.Path, Status = status,
            Steps = header?.Step ?? e.Step ?? 0, TrainSeconds = header?.ElapsedSeconds ?? 0,
            Mse = e.Mse, Psnr = e.Psnr, Ssim = e.Ssim, Kl = e.Kl, ActiveUnits = e.ActiveUnits,
            ElboNats = e.ElboNats, NllNats = e.NllNats, NllBitsPerDim = e.NllBitsPerDim, Frechet = e.Frechet,
            FrechetAggregate = e.FrechetAggregate,
        };
    }

    /// <summary>
    /// eval.json counts as the sweep's own when it measured the last checkpoint on the validation split with the
    /// sweep's settings; a later <c>vae eval --data …</c> of the run overwrites it, and then it is measured again.
    /// </summary>
    private static bool IsSweepEvaluation(EvalReport report, RunDirectory run, EvalOptions options) =>
        report.Split == "validation" && report.Checkpoint == run.Last &&
        (report.ImportanceSamples is null || report.ImportanceSamples == options.ImportanceSamples) &&
        (report.DecoderVariance is null || report.DecoderVariance == options.DecoderVariance) &&
        File.Exists(run.Last) && Checkpoint.ReadHeader(run.Last).Step == report.Step;

    /// <summary>A run whose metrics.jsonl ends with a "completed" stop row needs no more training.</summary>
    private static bool Completed(RunDirectory run)
    {
        if (!File.Exists(run.Metrics) || !File.Exists(run.Last)) return false;
        string? last = File.ReadLines(run.Metrics).LastOrDefault(l => l.Length > 0);
        if (last is null) return false;
        try
        {
            var row = JsonNode.Parse(last);
            return (string?)row?["type"] == "stop" && (string?)row?["reason"] == "completed";
        }
        catch (JsonException) { return false; }
    }

    /// <summary>A sweep directory belongs to one plan: continuing it with other settings would mix experiments.</summary>
    private static void CheckSamePlan(SweepDirectory dir, SweepPlan plan)
    {
        string identity = plan.Identity();
        if (File.Exists(dir.Plan))
        {
            string stored = File.ReadAllText(dir.Plan).Trim();
            if (stored != identity)
                throw new BadInputException(
                    $"Sweep '{plan.Name}' already exists at {dir.Path} with other settings; run it with the same flags to continue it, or pick another --name.");
            return;
        }
        try
        {
            Directory.CreateDirectory(dir.Runs);
            Json.WriteAllTextAtomic(dir.Plan, identity + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot write the sweep to {dir.Path}: {e.Message}", e);
        }
    }
}

/// <summary>The layout of sweeps/NAME/.</summary>
public sealed class SweepDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
    public string Plan => System.IO.Path.Combine(Path, "sweep.json");
    public string Runs => System.IO.Path.Combine(Path, "runs");
    public string Grids => System.IO.Path.Combine(Path, "grids");
    public string SummaryCsv => System.IO.Path.Combine(Path, "summary.csv");
    public string SummaryJson => System.IO.Path.Combine(Path, "summary.json");
    public string RateDistortion => System.IO.Path.Combine(Path, "rate_distortion.png");
    public string Overview => System.IO.Path.Combine(Path, "overview.png");
    public string Html => System.IO.Path.Combine(Path, "index.html");
    public string Grid(string runName) => System.IO.Path.Combine(Grids, $"{runName}.png");
}
