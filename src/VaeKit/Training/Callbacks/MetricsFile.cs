using System.Text.Json.Nodes;

namespace VaeKit.Training;

/// <summary>
/// runs/NAME/metrics.jsonl, one JSON object per <see cref="MetricsRow"/> (schema in docs/extending.md "metrics.jsonl"):
/// <c>type</c> (train, epoch, resume, stop), <c>step</c>, <c>epoch</c>, every value under its flat key
/// (<see cref="MetricKeyStyle.Flat"/>: <c>loss</c> in train rows, <c>train_loss</c> and <c>val_loss</c> in epoch rows),
/// <c>best</c> in epoch rows, <c>reason</c> in stop rows, and <c>time</c> (Unix seconds).
/// </summary>
public sealed class MetricsFile : IRunLogger, IDisposable
{
    private MetricsLog? _log;

    /// <inheritdoc/>
    public void Start(RunStart start)
    {
        var run = start.Context ?? throw new InvalidOperationException("MetricsFile needs a run context");
        _log = new MetricsLog(run.Directory.Metrics);
    }

    /// <inheritdoc/>
    public void Log(MetricsRow row)
    {
        if (_log is null) return;
        var json = new JsonObject { ["type"] = row.Kind.ToString().ToLowerInvariant(), ["step"] = row.Step, ["epoch"] = row.Epoch };
        foreach (var metric in row.Values) json[metric.Key(MetricKeyStyle.Flat)] = metric.Value;
        if (row.Kind == MetricsRowKind.Epoch) json["best"] = row.IsBest;
        if (row.Outcome is RunOutcome outcome) json["reason"] = Reason(outcome);
        json["time"] = Now();
        _log.Write(json);
    }

    /// <inheritdoc/>
    public void End(RunEnd end) => Dispose();

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
