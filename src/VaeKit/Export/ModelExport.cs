using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Training;
using VaeKit.Models;

namespace VaeKit.Export;

/// <summary>What <see cref="ModelExport.ToSafeTensors"/> wrote.</summary>
public sealed record ExportResult(string Path, int Tensors, long Bytes, CheckpointHeader Source);

/// <summary>What <see cref="ModelExport.ImportRun"/> created.</summary>
public sealed record ImportResult(string RunDirectory, string Checkpoint, RunConfig Config, int Tensors);

/// <summary>
/// Moves trained weights between VaeKit checkpoints and safetensors files that PyTorch's twin of the model
/// (<c>bench/pytorch_bench.py</c>) loads with <c>load_state_dict(strict=True)</c>. See docs/export.md.
/// </summary>
public static class ModelExport
{
    /// <summary>Metadata keys VaeKit writes into <c>__metadata__</c> (all values are strings).</summary>
    public const string ConfigKey = "config", StepKey = "step", EpochKey = "epoch", CheckpointKey = "checkpoint",
                        NamesKey = "tensor_names", NamesValue = "pytorch_bench";

    /// <summary>
    /// Writes the model of <paramref name="checkpointPath"/> (weights and buffers, BatchNorm running statistics
    /// included, float32) to <paramref name="outPath"/>, with the run config and the step in the metadata.
    /// </summary>
    public static ExportResult ToSafeTensors(string checkpointPath, string outPath)
    {
        var (header, model) = Checkpoint.LoadModel(checkpointPath);
        using (model)
        {
            var metadata = new Dictionary<string, string>
            {
                ["format"] = "pt",   // the convention for PyTorch state dicts
                [NamesKey] = NamesValue,
                [ConfigKey] = JsonSerializer.Serialize(header.Config, Json.Compact),
                [StepKey] = header.Step.ToString(System.Globalization.CultureInfo.InvariantCulture),
                [EpochKey] = header.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
                [CheckpointKey] = Path.GetFileName(checkpointPath),
                ["producer"] = "VaeKit " + (typeof(ModelExport).Assembly.GetName().Version?.ToString() ?? ""),
            };
            try
            {
                SafeTensors.Save(model, outPath, metadata);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"Cannot write {outPath}: {e.Message}", e);
            }
            var written = SafeTensors.ReadHeader(outPath);
            return new ExportResult(Path.GetFullPath(outPath), written.Tensors.Count, new FileInfo(outPath).Length, header);
        }
    }

    /// <summary>The run config VaeKit stored in a file's metadata, or null (a file written by PyTorch).</summary>
    public static RunConfig? StoredConfig(SafeTensorsHeader header, string path)
    {
        if (!header.Metadata.TryGetValue(ConfigKey, out var json)) return null;
        try
        {
            return JsonSerializer.Deserialize<RunConfig>(json, Json.Compact);
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{path} carries a run config VaeKit cannot read ({e.Message}); give {Settings.Import.Preset} or {Settings.Import.Config}.", e);
        }
    }

    /// <summary>
    /// Creates a run directory from a safetensors file: config.json and checkpoints/last.ckpt at step 0, so
    /// <c>vae sample/reconstruct/interpolate/traverse/eval --run</c> work on it. The architecture comes from
    /// <paramref name="config"/>, else from the config stored in the file; the image channels of a config without one
    /// are read from the first conv's weight.
    /// </summary>
    /// <exception cref="BadInputException">No architecture known, the weights do not fit it, or the directory already holds a run.</exception>
    public static ImportResult ImportRun(string safetensorsPath, RunConfig? config, string runDirectory)
    {
        var header = SafeTensors.ReadHeader(safetensorsPath);
        config ??= StoredConfig(header, safetensorsPath)
                   ?? throw new BadInputException($"{safetensorsPath} does not say which architecture it holds (no VaeKit config in " +
                                                  $"its metadata); give {Settings.Import.Preset} NAME or {Settings.Import.Config} RUN/config.json.");
        if (header["encoder.0.weight"] is { Shape.Length: 4 } convIn && convIn.Shape[1] != config.Model.InChannels && convIn.Shape[1] is 1 or 3)
            config = config with { Model = config.Model with { InChannels = (int)convIn.Shape[1] } };
        config.Model.Validate();

        var dir = new RunDirectory(runDirectory);
        if (File.Exists(dir.Last) || File.Exists(dir.Best))
            throw new BadInputException($"{dir.Path} already holds a run; pick a new {Settings.Import.Out} directory.");
        try
        {
            dir.Create();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot create the run directory {dir.Path}: {e.Message}", e);
        }

        using var model = Models.ModelFactory.Create(config.Model);
        SafeTensors.Load(model, safetensorsPath);
        using var trainer = new Trainer(model, config.Train, totalSteps: 1);
        var node = JsonSerializer.SerializeToNode(config, Json.Indented)!.AsObject();
        node["parameters"] = model.parameters().Sum(p => p.numel());
        node["imported_from"] = Path.GetFullPath(safetensorsPath);
        node["versions"] = JsonSerializer.SerializeToNode(TorchRuntime.Versions(), Json.Indented);
        node["created"] = DateTimeOffset.UtcNow.ToString("O");
        Json.WriteAllTextAtomic(dir.Config, node.ToJsonString(Json.Indented) + "\n");
        try
        {
            Checkpoint.Save(dir.Last, new CheckpointHeader { Config = config, Versions = TorchRuntime.Versions(), SavedAt = DateTimeOffset.UtcNow }, trainer);
        }
        catch (CheckpointWriteException e)
        {
            throw new CheckpointWriteException(e.Path,
                $"Could not write {e.Path}: {e.Cause}. The partly written file was removed; free some space and run vae import again.", e);
        }
        return new ImportResult(dir.Path, dir.Last, config, header.Tensors.Count);
    }
}
