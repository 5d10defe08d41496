using System.Text.Json.Nodes;
using VaeKit.Models;
using VaeKit.Training;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// Puts a training run on W&amp;B: every <see cref="MetricsRow"/> under its path keys (<see cref="MetricKeyStyle.Path"/>:
/// train/NAME every log_every steps, epoch/train_NAME, val/NAME and epoch/seconds at epoch ends) with <c>epoch</c>, and
/// the epoch's images. The summary adds val/best_loss, best_step and parameters. The run's config.json is the W&amp;B
/// config. When the run ends, the W&amp;B run is finished with the exit code the outcome maps to (0 completed, 130
/// interrupted, 1 diverged or failed).
/// </summary>
/// <param name="run">The connected W&amp;B run.</param>
/// <param name="notices">Where notices go when there is no run context (a library caller without a console).</param>
/// <remarks>Tracking never stops training: a failure here (a full disk under the spool, an unreadable grid) is reported
/// once and tracking goes quiet for the rest of the run; the training run, its metrics and checkpoints carry on.</remarks>
public sealed class WandbListener(WandbRun run, Action<string>? notices = null) : IRunLogger
{
    private RunContext? _context;
    private bool _broken;

    /// <summary>Cancelled when the run was stopped from its W&amp;B page; see <see cref="WandbRun.StopRequested"/>.</summary>
    public CancellationToken StopRequested => run.StopRequested;

    /// <inheritdoc/>
    public void Start(RunStart start)
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
    public void Log(MetricsRow row)
    {
        if (row.Kind == MetricsRowKind.Train && run.StopRequested.IsCancellationRequested)
            _context?.RequestStop("stopped from the W&B run page");   // the UI's Stop button: saved and resumable, as Ctrl-C
        if (row.Kind is not (MetricsRowKind.Train or MetricsRowKind.Epoch)) return;
        Guard(() =>
        {
            var values = new List<KeyValuePair<string, object?>> { new("epoch", row.Epoch) };
            values.AddRange(row.Values.Select(m => new KeyValuePair<string, object?>(m.Key(MetricKeyStyle.Path), m.Value)));
            foreach (var (name, path) in row.Images)
                values.Add(new("images/" + name, run.Image(name, path, row.Step)));
            run.Log(row.Step, values);
            if (row.IsBest)
            {
                var validation = row.Get(MetricScope.Validation, MetricNames.Loss);
                run.SetSummary(validation is null ? "train/best_loss" : "val/best_loss", validation ?? row.Get(MetricScope.EpochTrain, MetricNames.Loss));
                run.SetSummary("best_step", row.Step);
            }
        });
    }

    /// <inheritdoc/>
    public void End(RunEnd end)
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
