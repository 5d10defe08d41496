using System.Text.Json.Nodes;
using VaeKit.Models;

namespace VaeKit.Training;

/// <summary>
/// runs/NAME/metrics.jsonl, one JSON object per line (schema in README "metrics.jsonl"): a "train" row every
/// log_every steps with every step number by name plus epoch and img_per_sec; an "epoch" row with train_NAME means,
/// val_NAME metrics, kl_weight, best and seconds; "resume" and "stop" rows. Every row has type, step and time.
/// </summary>
public sealed class MetricsFile : IRunCallback, IDisposable
{
    private MetricsLog? _log;
    private RunContext? _run;

    /// <inheritdoc/>
    public void RunStarted(RunStart start)
    {
        _run = start.Context ?? throw new InvalidOperationException("MetricsFile needs a run context");
        _log = new MetricsLog(_run.Directory.Metrics);
        if (start.Resumed)
            _log.Write(new JsonObject { ["type"] = "resume", ["step"] = start.StartStep, ["epoch"] = _run.Position.Epoch + 1, ["time"] = Now() });
    }

    /// <inheritdoc/>
    public void StepCompleted(StepReport report)
    {
        if (_log is null || report.Metrics.Step % _run!.Config.Train.LogEvery != 0) return;
        var row = new JsonObject { ["type"] = "train", ["step"] = report.Metrics.Step, ["epoch"] = report.Epoch };
        foreach (var (name, value) in report.Metrics.Values) row[name] = value;
        row[MetricNames.ImagesPerSecond] = report.ImagesPerSecond;
        row["time"] = Now();
        _log.Write(row);
    }

    /// <inheritdoc/>
    public void EpochCompleted(EpochReport report)
    {
        if (_log is null) return;
        var row = new JsonObject { ["type"] = "epoch", ["epoch"] = report.Epoch, ["step"] = report.Step };
        foreach (var (name, value) in report.Train) row["train_" + name] = value;
        // kl_weight always means the weight in effect: in train rows the step's (after any schedule); here the one the
        // validation loss was computed with, which is the configured weight, hence val_.
        row["val_" + MetricNames.KlWeight] = _run!.Config.Train.KlWeight;
        row["seconds"] = report.Seconds;
        row["time"] = Now();
        if (report.Validation is { } validation)
            foreach (var (name, value) in validation.Values) row["val_" + name] = value;
        row["best"] = report.IsBest;
        _log.Write(row);
    }

    /// <inheritdoc/>
    public void RunEnded(RunEnd end)
    {
        if (_log is null) return;
        _log.Write(new JsonObject
        {
            ["type"] = "stop", ["reason"] = Reason(end.Outcome), ["step"] = end.Step, ["epoch"] = end.Epoch, ["time"] = Now(),
        });
        Dispose();
    }

    /// <summary>How a stop row spells an outcome ("completed", "interrupted", "diverged", "failed").</summary>
    private static string Reason(RunOutcome outcome) => outcome.ToString().ToLowerInvariant();

    /// <summary>
    /// How the run in <paramref name="metricsPath"/> last stopped, read back from its final "stop" row: the typed
    /// outcome and the step; null when the file ends otherwise (a crash, a run still going) or does not exist.
    /// </summary>
    public static (RunOutcome Outcome, long Step)? LastStop(string metricsPath)
    {
        if (!File.Exists(metricsPath)) return null;
        string? last = File.ReadLines(metricsPath).LastOrDefault(l => l.Length > 0);
        if (last is null) return null;
        try
        {
            var row = JsonNode.Parse(last);
            if ((string?)row?["type"] != "stop") return null;
            string? reason = (string?)row["reason"];
            foreach (var outcome in Enum.GetValues<RunOutcome>())
                if (Reason(outcome) == reason) return (outcome, (long?)row["step"] ?? 0);
            return null;
        }
        catch (System.Text.Json.JsonException) { return null; }
    }

    private static double Now() => Math.Round(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0, 3);

    /// <inheritdoc/>
    public void Dispose()
    {
        _log?.Dispose();
        _log = null;
    }
}
