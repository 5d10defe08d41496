using System.Text.Json;
using System.Text.Json.Nodes;

namespace VaeKit.Training;

/// <summary>
/// runs/NAME/metrics.jsonl: one JSON object per line, <c>"type"</c> = train (every log_every steps), epoch (train
/// means plus validation metrics), or stop (why a run ended early). Lines are flushed as written, so a crash
/// loses at most the line being written.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter _writer;

    public MetricsLog(string path)
    {
        Path = path;
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    public string Path { get; }

    public void Write(JsonObject row) => _writer.WriteLine(row.ToJsonString(Json.Compact));

    /// <summary>
    /// Before resuming from a checkpoint at <paramref name="step"/> with <paramref name="completedEpochs"/> epochs
    /// done, drops rows written after that checkpoint (they will be produced again), so no step appears twice.
    /// A torn last line from a crash is dropped too.
    /// </summary>
    public static void TruncateForResume(string path, long step, int completedEpochs)
    {
        if (!File.Exists(path)) return;
        var kept = new List<string>();
        foreach (var line in File.ReadLines(path))
        {
            JsonNode? row;
            try { row = JsonNode.Parse(line); }
            catch (JsonException) { continue; }
            if (row is null) continue;
            long rowStep = row["step"]?.GetValue<long>() ?? 0;
            int rowEpoch = row["epoch"]?.GetValue<int>() ?? 0;
            string type = row["type"]?.GetValue<string>() ?? "";
            bool after = rowStep > step || (type == "epoch" && rowEpoch > completedEpochs);
            if (!after) kept.Add(line);
        }
        Json.WriteAllTextAtomic(path, kept.Count == 0 ? "" : string.Join('\n', kept) + "\n");
    }

    public void Dispose() => _writer.Dispose();
}
