using System.Text;
using System.Text.Json;
using VaeKit.Config;

namespace VaeKit.Training;

/// <summary>Where training stands; the JSON header of a checkpoint.</summary>
public sealed record CheckpointHeader
{
    public required RunConfig Config { get; init; }
    /// <summary>Optimizer steps taken.</summary>
    public long Step { get; init; }
    /// <summary>0-based epoch in progress, and the next batch in it. BatchInEpoch = steps per epoch means the
    /// epoch's steps are done but its end (validation, images) is not.</summary>
    public int Epoch { get; init; }
    public int BatchInEpoch { get; init; }
    /// <summary>Train-loss sums of the epoch in progress, so its mean survives an interruption.</summary>
    public double EpochLossSum { get; init; }
    public double EpochReconstructionSum { get; init; }
    public double EpochKlSum { get; init; }
    public int EpochSteps { get; init; }
    public double? BestLoss { get; init; }
    public long? BestStep { get; init; }
    public double ElapsedSeconds { get; init; }
    public DateTimeOffset SavedAt { get; init; }
    public IReadOnlyDictionary<string, string>? Versions { get; init; }
}

/// <summary>
/// One self-describing file per checkpoint: magic, format version, a JSON <see cref="CheckpointHeader"/> (the run
/// config included, so a checkpoint alone rebuilds its model), then model, optimizer and RNG state written by
/// <see cref="Trainer.SaveState"/>, then an end marker that catches truncated files. Written through a temporary
/// file and a rename, so a crash or Ctrl-C mid-write leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    private static readonly byte[] Magic = "VAEKIT-CKPT"u8.ToArray();
    private static readonly byte[] EndMarker = "END."u8.ToArray();
    private const int FormatVersion = 1;

    public static void Save(string path, CheckpointHeader header, Trainer trainer)
    {
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(FormatVersion);
            var json = JsonSerializer.SerializeToUtf8Bytes(header, Json.Compact);
            writer.Write(json.Length);
            writer.Write(json);
            trainer.SaveState(writer);
            writer.Write(EndMarker);
        });
    }

    /// <summary>Reads only the header (cheap: no tensors).</summary>
    public static CheckpointHeader ReadHeader(string path)
    {
        using var reader = Open(path);
        return ReadHeader(reader, path);
    }

    /// <summary>Reads the header, builds the model and trainer it describes, and restores their state.</summary>
    /// <param name="totalSteps">Schedule length for the restored trainer; null = from the stored config.</param>
    public static (CheckpointHeader Header, Trainer Trainer) Load(string path, Func<CheckpointHeader, long> totalSteps)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path);
        var model = new AutoEncoder(header.Config.Model);
        var trainer = new Trainer(model, header.Config.Train, totalSteps(header));
        try
        {
            trainer.LoadState(reader);
            if (!reader.ReadBytes(EndMarker.Length).AsSpan().SequenceEqual(EndMarker))
                throw new BadInputException($"Checkpoint {path} is truncated (no end marker); use the other checkpoint of the run.");
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException)
        {
            trainer.Dispose();
            model.Dispose();
            throw new BadInputException($"Checkpoint {path} is damaged ({e.Message}); use the other checkpoint of the run.", e);
        }
        return (header, trainer);
    }

    /// <summary>Loads only the model (for sampling, reconstruction, evaluation): no optimizer is built.</summary>
    public static (CheckpointHeader Header, AutoEncoder Model) LoadModel(string path)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path);
        var model = new AutoEncoder(header.Config.Model);
        try
        {
            reader.ReadInt64();   // step; see Trainer.SaveState for the layout
            model.load(reader, strict: true);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException)
        {
            model.Dispose();
            throw new BadInputException($"Checkpoint {path} is damaged ({e.Message}); use the other checkpoint of the run.", e);
        }
        return (header, model);
    }

    private static BinaryReader Open(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"No checkpoint at {path}.");
        return new BinaryReader(File.OpenRead(path), Encoding.UTF8);
    }

    private static CheckpointHeader ReadHeader(BinaryReader reader, string path)
    {
        try
        {
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
                throw new BadInputException($"{path} is not a VaeKit checkpoint.");
            int version = reader.ReadInt32();
            if (version != FormatVersion)
                throw new BadInputException($"{path} has checkpoint format {version}; this VaeKit reads format {FormatVersion}.");
            int length = reader.ReadInt32();
            return JsonSerializer.Deserialize<CheckpointHeader>(reader.ReadBytes(length), Json.Compact)
                   ?? throw new BadInputException($"{path} has an empty header.");
        }
        catch (Exception e) when (e is EndOfStreamException or JsonException)
        {
            throw new BadInputException($"Checkpoint {path} is damaged ({e.Message}).", e);
        }
    }
}
