using System.Text.Json.Nodes;
using VaeKit.Data;
using VaeKit.Training;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// Puts a training run on W&amp;B and passes every call on to <paramref name="inner"/> (the console). Per step:
/// train/loss, train/reconstruction, train/kl, train/mse, train/psnr, train/kl_weight, train/lr, train/grad_norm,
/// train/img_per_sec and epoch; per epoch: epoch/train_*, val/* and the two grids as images. The summary adds
/// val/best_loss, best_step and parameters. The run's config.json is the W&amp;B config.
/// </summary>
/// <remarks>Tracking never stops training: a failure here (a full disk under the spool, an unreadable grid) is reported
/// once and tracking goes quiet for the rest of the run; the training run, its metrics and checkpoints carry on.</remarks>
public sealed class WandbListener(ITrainingListener inner, WandbRun run) : ITrainingListener
{
    private double? _bestLoss;
    private bool _broken;

    /// <summary>Cancelled when the run was stopped from its W&amp;B page; see <see cref="WandbRun.StopRequested"/>.</summary>
    public CancellationToken StopRequested => run.StopRequested;

    public void DataProgress(DecodeProgress progress) => inner.DataProgress(progress);

    public void RunStarted(RunStart start)
    {
        inner.RunStarted(start);
        Guard(() =>
        {
            string configPath = Path.Combine(start.Directory, "config.json");
            var config = File.Exists(configPath) && JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject stored ? stored : new JsonObject();
            run.Start(start.Directory, start.Name, config);
            run.SetSummary("parameters", start.Parameters);
        });
    }

    public void StepCompleted(StepReport report)
    {
        inner.StepCompleted(report);
        var m = report.Metrics;
        Guard(() => run.Log(m.Step,
        [
            new("epoch", report.Epoch),
            new("train/loss", m.Loss), new("train/reconstruction", m.Reconstruction), new("train/kl", m.Kl),
            new("train/mse", m.Mse), new("train/psnr", m.Psnr), new("train/kl_weight", m.KlWeight),
            new("train/lr", m.LearningRate), new("train/grad_norm", m.GradNorm), new("train/img_per_sec", report.ImagesPerSecond),
        ]));
    }

    public void EpochCompleted(EpochReport report)
    {
        inner.EpochCompleted(report);
        Guard(() => LogEpoch(report));
    }

    private void LogEpoch(EpochReport report)
    {
        var values = new List<KeyValuePair<string, object?>>
        {
            new("epoch", report.Epoch),
            new("epoch/train_loss", report.TrainLoss), new("epoch/train_reconstruction", report.TrainReconstruction),
            new("epoch/train_kl", report.TrainKl), new("epoch/seconds", report.Seconds),
            new("images/reconstruction", run.Image("reconstruction", report.ReconstructionGrid, report.Step)),
            new("images/samples", run.Image("samples", report.SampleGrid, report.Step)),
        };
        if (report.Validation is { } v)
        {
            values.AddRange([new("val/loss", v.Loss), new("val/reconstruction", v.Reconstruction), new("val/kl", v.Kl),
                             new("val/mse", v.Mse), new("val/psnr", v.Psnr)]);
        }
        run.Log(report.Step, values);
        if (report.IsBest)
        {
            _bestLoss = report.Validation?.Loss ?? report.TrainLoss;
            run.SetSummary(report.Validation is null ? "train/best_loss" : "val/best_loss", _bestLoss);
            run.SetSummary("best_step", report.Step);
        }
    }

    public void Message(string text) => inner.Message(text);

    private void Guard(Action track)
    {
        if (!_broken)
        {
            try { track(); }
            catch (Exception e)   // deliberately broad: see the remarks
            {
                _broken = true;
                inner.Message($"W&B: tracking stopped ({e.GetType().Name}: {run.Redact(e.Message)}); training goes on. What was logged so far is in {run.SpoolDirectory ?? "no spool"}.");
            }
        }
        Relay();
    }

    /// <summary>The sender's notices reach the console from the training thread, between progress updates.</summary>
    private void Relay()
    {
        foreach (var message in run.DrainMessages()) inner.Message(message);
    }
}
