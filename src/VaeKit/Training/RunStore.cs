using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// The files of one run directory and every rule about them: creating a run (name checks, no overwriting), the lock
/// that keeps a second process out, config.json, atomic checkpoints, and the book-keeping of a resume (the checkpoint
/// belongs to this run, a rewind keeps the newer last.ckpt, metrics.jsonl is cut back to the checkpoint, an extended
/// epoch total is recorded). The training loop asks it; the one other writer of a run directory is
/// <see cref="Export.ModelExport.ImportRun"/>, which creates a run from safetensors.
/// </summary>
public sealed class RunStore : IDisposable
{
    private readonly IDisposable _lock;

    private RunStore(RunDirectory directory, IDisposable runLock)
    {
        Directory = directory;
        _lock = runLock;
    }

    /// <summary>The layout of the run directory this store owns.</summary>
    public RunDirectory Directory { get; }

    /// <summary>
    /// Checks that runs/NAME can be created (a valid name, not an existing run, a writable parent) without creating
    /// it: cheap, so it runs before minutes of data loading.
    /// </summary>
    public static RunDirectory Plan(string runsRoot, string name)
    {
        ValidateName(name);
        if (string.IsNullOrWhiteSpace(runsRoot)) throw new BadInputException($"{Settings.Run.RunsDirectory} is empty; give a directory.");
        var dir = new RunDirectory(Path.Combine(runsRoot, name));
        if (File.Exists(dir.Last))
            throw new BadInputException($"Run '{name}' already exists at {dir.Path}. Resume it ({Settings.Run.Resume} {dir.Path}), or pick another {Settings.Run.Name}.");
        if (File.Exists(dir.Config))
            throw new BadInputException($"{dir.Path} holds a run that stopped before its first checkpoint; delete that directory or pick another {Settings.Run.Name}.");
        EnsureWritable(runsRoot);
        return dir;
    }

    /// <summary>A run name is one directory name: no path separators or control characters, not "." or "..".</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name is "." or ".." || name.Length > 200 ||
            name.Any(c => c is '/' or '\\' || char.IsControl(c)) || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            throw new BadInputException($"{Settings.Run.Name} '{name}' cannot be a run directory name; use letters, digits, '-', '_' and '.'.");
    }

    /// <summary>Creates the planned directory, takes its lock and writes config.json.</summary>
    public static RunStore Create(RunDirectory dir, RunConfig config, DatasetDescription dataset, long parameters)
    {
        try { dir.Create(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot create the run directory {dir.Path}: {e.Message}", e);
        }
        var store = new RunStore(dir, dir.Lock());
        var node = JsonSerializer.SerializeToNode(config, Json.Indented)!.AsObject();
        node["parameters"] = parameters;
        node["dataset"] = JsonSerializer.SerializeToNode(dataset, Json.Indented);
        node["versions"] = JsonSerializer.SerializeToNode(TorchRuntime.Versions(), Json.Indented);
        node["created"] = DateTimeOffset.UtcNow.ToString("O");
        Json.WriteAllTextAtomic(dir.Config, node.ToJsonString(Json.Indented) + "\n");
        return store;
    }

    /// <summary>Opens an existing run to resume it: takes the lock and checks that <paramref name="checkpoint"/> ("last",
    /// "best" or a file) is whole and belongs to this run. Returns the store, the checkpoint's path and header.</summary>
    public static (RunStore Store, string Checkpoint, CheckpointHeader Header) OpenForResume(string runDirectory, string checkpoint)
    {
        if (string.IsNullOrWhiteSpace(runDirectory)) throw new BadInputException($"{Settings.Run.Resume} is empty; give a run directory.");
        var dir = new RunDirectory(runDirectory);
        if (!System.IO.Directory.Exists(dir.Path)) throw new BadInputException($"No run directory at {dir.Path}.");
        var store = new RunStore(dir, dir.Lock());
        try
        {
            string path = checkpoint switch { "last" => dir.Last, "best" => dir.Best, _ => Path.GetFullPath(checkpoint) };
            var header = Checkpoint.Verify(path);
            if (path != dir.Last) store.CheckSameRun(header);
            return (store, path, header);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>Writes checkpoint "last" or "best" atomically.</summary>
    public string SaveCheckpoint(string which, CheckpointHeader header, Trainer trainer)
    {
        string path = which switch
        {
            "last" => Directory.Last,
            "best" => Directory.Best,
            _ => throw new ArgumentException($"unknown checkpoint '{which}'", nameof(which)),
        };
        Checkpoint.Save(path, header, trainer);
        return path;
    }

    /// <summary>
    /// Before continuing from <paramref name="checkpoint"/>: an older checkpoint rewinds the run, so the newer
    /// last.ckpt is kept beside it, not lost; metrics.jsonl loses the rows written after the checkpoint (they will be
    /// produced again); an extended epoch total goes into config.json. Returns a notice for the user, if any.
    /// </summary>
    public string? PrepareResume(string checkpoint, CheckpointHeader from, int? newEpochTotal)
    {
        string? notice = null;
        if (checkpoint != Directory.Last && File.Exists(Directory.Last))
        {
            long lastStep = Checkpoint.ReadHeader(Directory.Last).Step;
            if (lastStep > from.Step)
            {
                string kept = Path.Combine(Directory.Checkpoints, $"last.step-{lastStep}.ckpt");
                File.Copy(Directory.Last, kept, overwrite: true);
                notice = $"rewinding from step {lastStep} to step {from.Step}; the newer checkpoint is kept as {kept}";
            }
        }
        MetricsLog.TruncateForResume(Directory.Metrics, from.Step, from.Epoch);
        if (newEpochTotal is int epochs && File.Exists(Directory.Config))
        {
            var node = JsonNode.Parse(File.ReadAllText(Directory.Config))!.AsObject();
            if (node["train"] is JsonObject train) train["epochs"] = epochs;
            Json.WriteAllTextAtomic(Directory.Config, node.ToJsonString(Json.Indented) + "\n");
        }
        return notice;
    }

    /// <summary>A checkpoint from elsewhere must belong to this run: same name and architecture.</summary>
    private void CheckSameRun(CheckpointHeader candidate)
    {
        RunConfig? own = File.Exists(Directory.Last) ? Checkpoint.ReadHeader(Directory.Last).Config : null;
        if (own is null && File.Exists(Directory.Config))
            own = JsonSerializer.Deserialize<RunConfig>(File.ReadAllText(Directory.Config), Json.Indented);
        if (own is null) return;
        if (own.Name != candidate.Config.Name ||
            JsonSerializer.Serialize(own.Model, Json.Compact) != JsonSerializer.Serialize(candidate.Config.Model, Json.Compact))
            throw new BadInputException(
                $"That checkpoint belongs to run '{candidate.Config.Name}', not to {Directory.Path} ('{own.Name}'). " +
                "To branch from it, resume it in its own run directory, or copy that directory under a new name first.");
    }

    /// <summary>Fails early when runs cannot be written where asked.</summary>
    private static void EnsureWritable(string runsRoot)
    {
        try
        {
            if (File.Exists(runsRoot))
                throw new BadInputException($"{Settings.Run.RunsDirectory} {runsRoot} is a file; runs need a directory.");
            System.IO.Directory.CreateDirectory(runsRoot);
            var probe = Path.Combine(runsRoot, $".write-test-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot write runs to {Path.GetFullPath(runsRoot)}: {e.Message}", e);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _lock.Dispose();
}
