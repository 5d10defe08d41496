using System.Text.Json.Nodes;
using VaeKit.Models;
using VaeKit.Training;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// Puts a training run on W&amp;B. Per step: train/NAME for every number the step reports (<see cref="MetricNames"/>:
/// loss, the objective's terms, psnr, kl_weight, lr, grad_norm) plus train/img_per_sec and epoch; per epoch:
/// epoch/train_NAME, val/NAME and the epoch's images. The summary adds val/best_loss, best_step and parameters. The
/// run's config.json is the W&amp;B config. When the run ends, the W&amp;B run is finished with the exit code the
/// outcome maps to (0 completed, 130 interrupted, 1 diverged or failed).
/// </summary>
/// <param name="run">The connected W&amp;B run.</param>
/// <param name="notices">Where notices go when there is no run context (a library caller without a console).</param>
/// <remarks>Tracking never stops training: a failure here (a full disk under the spool, an unreadable grid) is reported
/// once and tracking goes quiet for the rest of the run; the training run, its metrics and checkpoints carry on.</remarks>
public sealed class WandbListener(WandbRun run, Action<string>? notices = null) : IRunCallback
{
    private RunContext? _context;
    private double? _bestLoss;
    private bool _broken;

    /// <summary>Cancelled when the run was stopped from its W&amp;B page; see <see cref="WandbRun.StopRequested"/>.</summary>
    public CancellationToken StopRequested => run.StopRequested;

    /// <inheritdoc/>
    public void RunStarted(RunStart start)
    {
        _context = start.Context;
        Guard(() =>
        {
            string configPath = Path.Combine(start.Directory, "config.json");
            var config = File.Exists(configPath) && JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject stored ? stored : new JsonObject();
            run.Start(start.Directory, start.Name, config);
            run.SetSummary("parameters", start.Parameters);
        });
    }

    /// <inheritdoc/>
    public void StepCompleted(StepReport report)
    {
        if (run.StopRequested.IsCancellationRequested)
            _context?.RequestStop("stopped from the W&B run page");   // the UI's Stop button: saved and resumable, as Ctrl-C
        var m = report.Metrics;
        Guard(() =>
        {
            var values = new List<KeyValuePair<string, object?>> { new("epoch", report.Epoch) };
            values.AddRange(m.Values.Select(kv => new KeyValuePair<string, object?>("train/" + kv.Key, kv.Value)));
            values.Add(new("train/" + MetricNames.ImagesPerSecond, report.ImagesPerSecond));
            run.Log(m.Step, values);
        });
    }

    /// <inheritdoc/>
    public void EpochCompleted(EpochReport report) => Guard(() => LogEpoch(report));

    private void LogEpoch(EpochReport report)
    {
        var values = new List<KeyValuePair<string, object?>> { new("epoch", report.Epoch) };
        values.AddRange(report.Train.Select(kv => new KeyValuePair<string, object?>("epoch/train_" + kv.Key, kv.Value)));
        values.Add(new("epoch/seconds", report.Seconds));
        foreach (var (name, path) in report.Images)
            values.Add(new("images/" + name, run.Image(name, path, report.Step)));
        if (report.Validation is { } v)
            values.AddRange(v.Values.Select(kv => new KeyValuePair<string, object?>("val/" + kv.Key, kv.Value)));
        run.Log(report.Step, values);
        if (report.IsBest)
        {
            _bestLoss = report.Validation?.Loss ?? report.TrainLoss;
            run.SetSummary(report.Validation is null ? "train/best_loss" : "val/best_loss", _bestLoss);
            run.SetSummary("best_step", report.Step);
        }
    }

    /// <inheritdoc/>
    public void RunEnded(RunEnd end)
    {
        int exitCode = end.Outcome switch { RunOutcome.Completed => 0, RunOutcome.Interrupted => 130, _ => 1 };
        Guard(() => run.Finish(exitCode));
    }

    private void Guard(Action track)
    {
        if (!_broken)
        {
            try { track(); }
            catch (Exception e)   // deliberately broad: see the remarks
            {
                _broken = true;
                Notify($"W&B: tracking stopped ({e.GetType().Name}: {run.Redact(e.Message)}); training goes on. What was logged so far is in {run.SpoolDirectory ?? "no spool"}.");
            }
        }
        foreach (var message in run.DrainMessages()) Notify(message);   // the sender's notices, from the training thread
    }

    /// <summary>Through the run's callbacks (the console) once the run started; to <c>notices</c> otherwise.</summary>
    private void Notify(string text)
    {
        if (_context is not null) _context.Notify(text);
        else notices?.Invoke(text);
    }
}
