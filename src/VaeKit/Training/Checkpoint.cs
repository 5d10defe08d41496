using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>Where training stands; the JSON header of a checkpoint.</summary>
public sealed record CheckpointHeader
{
    /// <summary>The run's configuration.</summary>
    public required RunConfig Config { get; init; }
    /// <summary>Optimizer steps taken.</summary>
    public long Step { get; init; }
    /// <summary>0-based epoch in progress, and the next batch in it. BatchInEpoch = steps per epoch means the
    /// epoch's steps are done but its end (validation, images) is not.</summary>
    public int Epoch { get; init; }
    /// <summary>Next batch in <see cref="Epoch"/>, 0-based.</summary>
    public int BatchInEpoch { get; init; }
    /// <summary>Sums of the epoch in progress by metric name (loss and the objective's terms), so its train means
    /// survive an interruption.</summary>
    public IReadOnlyDictionary<string, double>? EpochSums { get; init; }
    /// <summary>Steps behind <see cref="EpochSums"/>.</summary>
    public int EpochSteps { get; init; }
    /// <summary>Format 2 before named terms: read so a resumed old checkpoint keeps its epoch means.</summary>
    [JsonPropertyName("epoch_loss_sum"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double LegacyEpochLossSum { get; init; }
    /// <summary>Format 2 before named terms: the epoch's reconstruction sum.</summary>
    [JsonPropertyName("epoch_reconstruction_sum"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double LegacyEpochReconstructionSum { get; init; }
    /// <summary>Format 2 before named terms: the epoch's KL sum.</summary>
    [JsonPropertyName("epoch_kl_sum"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double LegacyEpochKlSum { get; init; }
    /// <summary>Lowest validation loss so far (the "best" checkpoint's); null before the first validation.</summary>
    public double? BestLoss { get; init; }
    /// <summary>Step of <see cref="BestLoss"/>.</summary>
    public long? BestStep { get; init; }
    /// <summary>Training wall time so far, seconds, across resumes.</summary>
    public double ElapsedSeconds { get; init; }
    /// <summary>When the checkpoint was written.</summary>
    public DateTimeOffset SavedAt { get; init; }
    /// <summary>Versions of vaekit, torchsharp, libtorch, dotnet and the OS that wrote it.</summary>
    public IReadOnlyDictionary<string, string>? Versions { get; init; }
}

/// <summary>
/// One self-describing file per checkpoint: magic, format version, a JSON <see cref="CheckpointHeader"/> (the run
/// config included, so a checkpoint alone rebuilds its model), then the step, the model and the optimizer state written by
/// <see cref="Trainer.SaveState"/> for each optimized module in order, the autoencoder first (no generator state:
/// the noise of step t is seeded from (seed, t)), then an end marker that catches truncated files. Written through a temporary
/// file and a rename, so a crash or Ctrl-C mid-write leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    private static readonly byte[] Magic = "VAEKIT-CKPT"u8.ToArray();
    private static readonly byte[] EndMarker = "END."u8.ToArray();
    private const int FormatVersion = 3;   // 3: further optimized modules (the discriminator) after the autoencoder's state
    private const int SingleModuleVersion = 2;  // 2: flat AdamW state (1: TorchSharp's AdamW state_dict); still written for one module
    private const int OldestModelVersion = 1;  // the model part is unchanged since format 1: inference still reads it

    /// <exception cref="CheckpointWriteException">The file could not be written (e.g. the disk is full); the previous
    /// checkpoint at <paramref name="path"/> is untouched and the message says how to go on.</exception>
    public static void Save(string path, CheckpointHeader header, Trainer trainer) => Save(path, header, trainer, wrap: null);

    /// <param name="wrap">Test seam passed to <see cref="AtomicFile"/>: wraps the file stream (e.g. to fail like a full disk).</param>
    internal static void Save(string path, CheckpointHeader header, Trainer trainer, Func<Stream, Stream>? wrap)
    {
        try
        {
            AtomicFile.Write(path, stream =>
            {
                using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
                writer.Write(Magic);
                writer.Write(trainer.Modules.Count > 1 ? FormatVersion : SingleModuleVersion);
                var json = JsonSerializer.SerializeToUtf8Bytes(header, Json.Compact);
                writer.Write(json.Length);
                writer.Write(json);
                trainer.SaveState(writer);
                writer.Write(EndMarker);
            }, wrap);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailed(path, e);
        }
    }

    /// <summary>
    /// The user's story of a failed write: the cause, what is still on disk (read back from the checkpoints next to
    /// <paramref name="path"/>), whether the temporary file is gone, and the command that continues.
    /// </summary>
    private static CheckpointWriteException WriteFailed(string path, Exception e)
    {
        path = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(path)!;
        bool inRun = Path.GetFileName(directory) == "checkpoints";
        string runDir = inRun ? Path.GetDirectoryName(directory)! : directory;

        var intact = new List<string>();
        var damaged = new List<string>();
        Operation? resume = null;
        foreach (var name in new[] { Path.GetFileName(path), "last.ckpt", "best.ckpt" }.Distinct())
        {
            var file = Path.Combine(directory, name);
            if (!File.Exists(file)) continue;
            try
            {
                var h = ReadHeader(file);
                string when = h.BatchInEpoch > 0 ? $"during epoch {h.Epoch + 1}" : h.Epoch > 0 ? $"after epoch {h.Epoch}" : "before the first epoch";
                intact.Add($"{name} (step {h.Step}, {when})");
                if (name == "last.ckpt") resume = new(Settings.Operations.Train, Settings.Run.Resume.Is(runDir));   // a resume reads last.ckpt
                else if (name == "best.ckpt") resume ??= new(Settings.Operations.Train, Settings.Run.Resume.Is(runDir), Settings.Run.ResumeFrom.Is("best"));
            }
            catch (BadInputException)
            {
                damaged.Add(name);
            }
        }

        string what = $"Could not save the checkpoint {path}: {CheckpointWriteException.Describe(e)}.";
        string temp = e.Data[AtomicFile.LeftOverKey] is string left
            ? $" The partly written temporary file {left} could not be removed; delete it."
            : " The partly written temporary file was removed.";
        string state = intact.Count == 0
            ? " No earlier checkpoint of this run is on disk, so training cannot continue from one."
            : $" {string.Join(" and ", intact)} {(intact.Count > 1 ? "are" : "is")} intact.";
        if (damaged.Count > 0)
            state += $" {string.Join(" and ", damaged)} {(damaged.Count > 1 ? "were" : "was")} already unreadable before this write.";
        string free = CheckpointWriteException.IsOutOfSpace(e) ? $"Free some space on the disk holding {directory}, then" : "Fix the cause, then";
        SettingText next = $" {free} try again.";
        if (resume is not null && inRun) next = $" {free} continue with: {resume}";
        else if (inRun) next = $" {free} delete {runDir} and start the run again.";
        return new CheckpointWriteException(path, SettingText.Plain(what + temp + state).Then(next), e);
    }

    /// <summary>Reads only the header (cheap: no tensors).</summary>
    public static CheckpointHeader ReadHeader(string path)
    {
        using var reader = Open(path);
        return ReadHeader(reader, path, out _);
    }

    /// <summary>
    /// Reads the header, builds the model it describes on <paramref name="device"/>, then the trainer (whose optimizer
    /// binds to the moved parameters), and restores their state.
    /// </summary>
    /// <param name="train">Optimisation settings for the restored trainer (the stored ones, possibly extended).</param>
    /// <param name="totalSteps">Schedule length for the restored trainer.</param>
    /// <param name="precision">Arithmetic of the restored trainer (a hardware choice: may differ from the saved run's).</param>
    public static (CheckpointHeader Header, Trainer Trainer) Load(string path, TrainConfig train, long totalSteps, Device device,
                                                                  Precision precision = Precision.Fp32, bool? channelsLast = null)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path, out int version);
        if (version < SingleModuleVersion)
            throw new BadInputException(
                $"{path} was written by an older VaeKit (checkpoint format {version}) whose optimizer state this version " +
                $"cannot continue; sample, reconstruct and evaluate still read it. Start a new run to keep training.");
        var model = ModelFactory.Create(header.Config.Model);
        model.to(device);
        var trainer = new Trainer(model, train, totalSteps, precision, channelsLast);
        try
        {
            trainer.LoadState(reader);
            ExpectEnd(reader, path);
        }
        catch (Exception e) when (IsDamage(e))
        {
            trainer.Dispose();
            model.Dispose();
            throw Damaged(path, e);
        }
        return (header, trainer);
    }

    /// <summary>Loads only the model (for sampling, reconstruction, evaluation): no optimizer is built.</summary>
    public static (CheckpointHeader Header, VaeModel Model) LoadModel(string path)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path, out _);
        var model = ModelFactory.Create(header.Config.Model);
        try
        {
            reader.ReadInt64();   // step: Trainer.SaveState writes it before the model
            model.load(reader, strict: true);
        }
        catch (Exception e) when (IsDamage(e))
        {
            model.Dispose();
            throw Damaged(path, e);
        }
        return (header, model);
    }

    private static void ExpectEnd(BinaryReader reader, string path)
    {
        if (!reader.ReadBytes(EndMarker.Length).AsSpan().SequenceEqual(EndMarker))
            throw new InvalidDataException("no end marker: the file is truncated or was written by another format");
    }

    /// <summary>What reading a cut or corrupted file throws, from .NET or from libtorch.</summary>
    private static bool IsDamage(Exception e) =>
        e is EndOfStreamException or IOException or InvalidDataException or ArgumentException or System.Runtime.InteropServices.ExternalException;

    private static BadInputException Damaged(string path, Exception e)
    {
        string other = Path.GetFileName(path) == "best.ckpt" ? "last" : "best";
        return new($"Checkpoint {path} is damaged ({e.Message.Split('\n')[0]}). Each run keeps two: resume from the other with " +
                   $"{Settings.Run.ResumeFrom.Is(other)}, or load it with {Settings.Run.Checkpoint.Is(other)}.", e);
    }

    /// <summary>Cheap whole-file check before minutes of data loading: the header parses and the end marker is there.</summary>
    public static CheckpointHeader Verify(string path)
    {
        var header = ReadHeader(path);
        using var stream = File.OpenRead(path);
        var tail = new byte[EndMarker.Length];
        stream.Seek(-EndMarker.Length, SeekOrigin.End);
        stream.ReadExactly(tail);
        if (!tail.AsSpan().SequenceEqual(EndMarker))
            throw Damaged(path, new InvalidDataException("no end marker: the file is truncated"));
        return header;
    }

    private static BinaryReader Open(string path)
    {
        try
        {
            return new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BadInputException($"No checkpoint at {path}.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot read checkpoint {path}: {e.Message}", e);
        }
    }

    private static CheckpointHeader ReadHeader(BinaryReader reader, string path, out int version)
    {
        try
        {
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
                throw new BadInputException($"{path} is not a VaeKit checkpoint.");
            version = reader.ReadInt32();
            if (version < OldestModelVersion || version > FormatVersion)
                throw new BadInputException($"{path} has checkpoint format {version}; this VaeKit reads formats {OldestModelVersion} to {FormatVersion}.");
            int length = reader.ReadInt32();
            if (length is <= 0 or > 16 << 20) throw new InvalidDataException($"implausible header length {length}");
            var header = JsonSerializer.Deserialize<CheckpointHeader>(reader.ReadBytes(length), Json.Compact)
                         ?? throw new BadInputException($"{path} has an empty header.");
            if (header.EpochSums is null && header.EpochSteps > 0)
                header = header with
                {
                    EpochSums = new Dictionary<string, double>
                    {
                        [MetricNames.Loss] = header.LegacyEpochLossSum,
                        [MetricNames.Reconstruction] = header.LegacyEpochReconstructionSum,
                        [MetricNames.Kl] = header.LegacyEpochKlSum,
                    },
                };
            return header;
        }
        catch (Exception e) when (e is JsonException || IsDamage(e))
        {
            throw Damaged(path, e);
        }
    }
}
