using System.Text.Json;

namespace VaeKit.Serving;

/// <summary>A run to serve: its directory and the label the page gives it.</summary>
public sealed record ServedRun(string Directory, string Label);

/// <summary>Turns <c>vae serve</c>'s --run and --sweep into the list of runs to load, checked before any model is.</summary>
public static class ServedRuns
{
    /// <summary>Most runs one server loads (each is one model in memory and a column on the page).</summary>
    public const int MaxRuns = 16;

    /// <summary>
    /// --run directories as given (label: the directory's name), or the runs of a sweep: the rows of
    /// sweeps/NAME/summary.json that finished (label: the sweep's label, e.g. "kl_weight 0.1"), found under the
    /// sweep's runs/ even when the sweep directory was moved; without a summary yet, every run under runs/ that has a
    /// checkpoint.
    /// </summary>
    public static IReadOnlyList<ServedRun> Resolve(IReadOnlyList<string> runs, string? sweep)
    {
        if (runs.Count > 0 && sweep is not null) throw new BadInputException($"Give {Settings.Serve.Runs} (one or more) or {Settings.Serve.Sweep}, not both.");
        if (runs.Count == 0 && sweep is null) throw new BadInputException($"Nothing to serve: give {Settings.Serve.Runs} runs/NAME (repeatable) or {Settings.Serve.Sweep} sweeps/NAME.");
        var list = sweep is null
            ? runs.Select(r => new ServedRun(Path.GetFullPath(r), Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(r))))).ToList()
            : FromSweep(sweep);
        if (list.Count > MaxRuns) throw new BadInputException($"{list.Count} runs given; vae serve shows at most {MaxRuns} at once.");
        foreach (var run in list)
            if (!System.IO.Directory.Exists(run.Directory)) throw new BadInputException($"No run directory at {run.Directory}.");
        return list;
    }

    private static List<ServedRun> FromSweep(string sweep)
    {
        string root = Path.GetFullPath(sweep);
        if (!System.IO.Directory.Exists(root)) throw new BadInputException($"No sweep directory at {root}.");
        string runsDir = Path.Combine(root, "runs");
        string summary = Path.Combine(root, "summary.json");
        var list = new List<ServedRun>();
        if (File.Exists(summary))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(summary));
                foreach (var row in doc.RootElement.GetProperty("rows").EnumerateArray())
                {
                    if (row.TryGetProperty("status", out var status) && status.GetString() != "completed") continue;
                    string run = row.GetProperty("run").GetString() ?? "";
                    string local = Path.Combine(runsDir, Path.GetFileName(Path.TrimEndingDirectorySeparator(run)));
                    string label = row.TryGetProperty("label", out var l) && l.GetString() is { Length: > 0 } text ? text : Path.GetFileName(local);
                    list.Add(new ServedRun(System.IO.Directory.Exists(local) ? local : run, label));
                }
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new BadInputException($"{summary} is not a sweep summary ({e.Message.Split('\n')[0]}).", e);
            }
        }
        else if (System.IO.Directory.Exists(runsDir))
        {
            list.AddRange(System.IO.Directory.GetDirectories(runsDir).Order(StringComparer.Ordinal)
                .Where(d => File.Exists(Path.Combine(d, "checkpoints", "last.ckpt")))
                .Select(d => new ServedRun(d, Path.GetFileName(d))));
        }
        if (list.Count == 0)
            throw new BadInputException($"{root} has no finished runs to serve (no summary.json rows, no runs/*/checkpoints/last.ckpt).");
        return list;
    }
}
