using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Evaluation;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Sweeps;

/// <summary>How one run of a sweep ended: trained and evaluated, diverged, or interrupted (Ctrl-C, SIGTERM).</summary>
public sealed record SweepRunOutcome(RunOutcome Outcome, SweepRow? Row, SettingText? Message);

/// <summary>
/// Every call the sweep makes into training, evaluation and inference, in one file: train or resume a run, evaluate
/// its last checkpoint, decode its pictures, and read what a run directory says about itself. The rest of
/// <c>Sweeps/</c> sees runs only through these methods.
/// </summary>
internal static class SweepTraining
{
    /// <summary>
    /// Brings one run to an evaluated end: nothing when it already has the sweep's evaluation, otherwise trains it
    /// (new), resumes it (from its last checkpoint) or only evaluates it (training finished earlier).
    /// </summary>
    /// <param name="host">Runs one training with a listener (the CLI's progress display).</param>
    public static SweepRunOutcome RunToEvaluation(SweepPlan plan, SweepEntry entry, string runsRoot,
                                                  Func<Func<IRunCallback, RunResult>, RunResult> host,
                                                  Action<string> message, CancellationToken cancellationToken)
    {
        var config = plan.ConfigFor(entry);
        var run = new RunDirectory(Path.Combine(runsRoot, entry.RunName));
        if (Evaluated(plan, entry, runsRoot) is SweepRow done)
        {
            message($"{entry.Label} — finished earlier, not redone ({run.Path})");
            return new SweepRunOutcome(RunOutcome.Completed, done, null);
        }
        if (Diverged(run) is long divergedAt)
        {
            message($"{entry.Label} diverged earlier (step {divergedAt}); not redone");
            return new SweepRunOutcome(RunOutcome.Diverged, DivergedRow(entry, run, divergedAt), null);
        }

        message($"{entry.Label} → {run.Path}");
        if (!Completed(run))
        {
            if (!File.Exists(run.Last)) ClearUnstarted(run);
            var result = File.Exists(run.Last)
                ? host(listener => TrainingRun.Resume(new ResumeOptions
                {
                    RunDirectory = run.Path, Device = config.Runtime.Device, Threads = config.Runtime.Threads,
                }, listener, cancellationToken))
                : host(listener => TrainingRun.Train(config, runsRoot, listener, cancellationToken));
            if (result.Outcome == RunOutcome.Interrupted)
                return new SweepRunOutcome(RunOutcome.Interrupted, null, result.Message);
            if (result.Outcome == RunOutcome.Diverged)
            {
                message($"{entry.Label} diverged: {result.Message}");
                return new SweepRunOutcome(RunOutcome.Diverged, DivergedRow(entry, run, result.Step), result.Message);
            }
        }
        message($"evaluating {entry.Label}");
        // The last checkpoint, not the best: every run gets the same budget, and "best" is chosen by a loss that
        // itself depends on kl_weight.
        var eval = Evaluator.EvaluateRun(run.Path, null, plan.Eval, "last", config.Runtime.Device);
        return new SweepRunOutcome(RunOutcome.Completed, Row(entry, config, run, eval, "completed"), null);
    }

    /// <summary>The run's row when it was trained and evaluated with the sweep's settings; null when not (yet).</summary>
    public static SweepRow? Evaluated(SweepPlan plan, SweepEntry entry, string runsRoot)
    {
        var run = new RunDirectory(Path.Combine(runsRoot, entry.RunName));
        string report = Evaluator.ReportPath(run);
        if (!File.Exists(report)) return null;
        EvalReport eval;
        try { eval = EvalReport.Load(report); }
        catch (JsonException) { return null; }
        return IsSweepEvaluation(eval, run, plan.Eval) ? Row(entry, plan.ConfigFor(entry), run, eval, "completed") : null;
    }

    /// <summary>The run's row when its training diverged earlier; null when not.</summary>
    public static SweepRow? DivergedRow(SweepEntry entry, string runsRoot)
    {
        var run = new RunDirectory(Path.Combine(runsRoot, entry.RunName));
        return Diverged(run) is long step ? DivergedRow(entry, run, step) : null;
    }

    /// <summary>The step at which the run diverged, when its metrics.jsonl ends with a "diverged" stop row.</summary>
    private static long? Diverged(RunDirectory run) =>
        MetricsFile.LastStop(run.Metrics) is { Outcome: RunOutcome.Diverged } stop ? stop.Step : null;

    private static SweepRow DivergedRow(SweepEntry entry, RunDirectory run, long step) => new()
    {
        Label = entry.Label, Model = entry.Model, Settings = entry.Settings, Run = run.Path, Status = "diverged", Steps = step,
    };

    private static SweepRow Row(SweepEntry entry, RunConfig config, RunDirectory run, EvalReport e, string status)
    {
        var header = File.Exists(run.Last) ? Checkpoint.ReadHeader(run.Last) : null;
        return new SweepRow
        {
            Label = entry.Label, Model = entry.Model, Settings = entry.Settings, Run = run.Path, Status = status,
            KlWeight = e.Kl is not null ? config.Train.KlWeight : null,     // families with a KL term
            Steps = header?.Step ?? e.Step ?? 0, TrainSeconds = header?.ElapsedSeconds ?? 0,
            Mse = e.Mse, Psnr = e.Psnr, Ssim = e.Ssim, Kl = e.Kl, ActiveUnits = e.ActiveUnits,
            ElboNats = e.ElboNats, NllNats = e.NllNats, NllBitsPerDim = e.NllBitsPerDim, Frechet = e.Frechet,
            FrechetAggregate = e.FrechetAggregate,
            Fd = e.Fd, FdReconstructions = e.FdReconstructions, FdFloor = e.FdFloor, FdImages = e.FdImages, FdNet = e.FdNet,
            Kid = e.Kid, Precision = e.Precision, Recall = e.Recall,
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
    private static bool Completed(RunDirectory run) =>
        File.Exists(run.Last) && MetricsFile.LastStop(run.Metrics) is { Outcome: RunOutcome.Completed };

    /// <summary>
    /// The pictures of one run for the sweep's grids, from its last checkpoint: the first <paramref name="images"/>
    /// showcase images (1, C, H, W each, as the model sees them) and their reconstructions, and 2·images decodes of
    /// z ~ N(0, I) drawn with <paramref name="sampleSeed"/> (the same z for every run of a latent size).
    /// </summary>
    public static (Tensor Originals, Tensor Reconstructions, Tensor Samples, int ImageSize) Showcase(string runDirectory, string device, int images, int sampleSeed)
    {
        using var trained = TrainedModel.Load(runDirectory, "last", device);
        using var data = trained.LoadData(null);
        var showcase = TrainedModel.Showcase(data, runData: true, needed: images);
        var (x, reconstructions) = trained.Reconstruct(showcase, images);
        var samples = trained.Sample(images * 2, temperature: 1, seed: sampleSeed);
        return (x, reconstructions, samples, trained.Config.Model.ImageSize);
    }

    /// <summary>
    /// A run that died before its first checkpoint (a Slurm task killed while loading data) left config.json and
    /// nothing to resume from; <c>vae train</c> refuses such a directory, so the sweep starts it again from scratch.
    /// The run's lock makes sure no other process is still on it.
    /// </summary>
    private static void ClearUnstarted(RunDirectory run)
    {
        if (!File.Exists(run.Config)) return;
        using (run.Lock())
        {
            foreach (var file in new[] { run.Config, run.Metrics })
                File.Delete(file);
            foreach (var directory in new[] { run.Images, run.Checkpoints, run.TensorBoard })
                if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }
}
