using System.Text.Json.Serialization;

namespace VaeKit.Config;

/// <summary>Which model <see cref="AutoEncoder"/> builds: a deterministic AE or a VAE with a Gaussian posterior.</summary>
public enum ModelKind { Ae, Vae }

/// <summary>Normalisation inside residual blocks and before the heads.</summary>
public enum NormKind { Batch, Group }

/// <summary>
/// Architecture of the symmetric residual CNN (see README "Model"). Serialised as the "model" part of
/// <c>config.json</c> and inside every checkpoint, so a run directory describes itself.
/// </summary>
public sealed record ModelConfig
{
    public ModelKind Kind { get; init; } = ModelKind.Vae;

    /// <summary>Input/output channels: 3 for colour, 1 for grey. Set from the data, not by the user.</summary>
    public int InChannels { get; init; } = 3;

    /// <summary>Image side s in pixels; must be divisible by 2^(L-1) where L = Widths.Count.</summary>
    public int ImageSize { get; init; } = 32;

    /// <summary>Stage widths c[0..L-1]; each stage but the last ends in a stride-2 conv that halves H and W.</summary>
    public IReadOnlyList<int> Widths { get; init; } = [16, 32, 64];

    /// <summary>Residual blocks per stage (n).</summary>
    public int Blocks { get; init; } = 1;

    /// <summary>Latent size z.</summary>
    public int Latent { get; init; } = 32;

    public NormKind Norm { get; init; } = NormKind.Batch;

    /// <summary>GroupNorm groups when <see cref="Norm"/> is Group; must divide every width.</summary>
    public int Groups { get; init; } = 8;

    /// <summary>Spatial side at the bottleneck: s / 2^(L-1).</summary>
    [JsonIgnore] public int BottleneckSide => ImageSize >> (Widths.Count - 1);

    /// <summary>Flattened encoder features: c[L-1] · side².</summary>
    [JsonIgnore] public int FlatFeatures => Widths[^1] * BottleneckSide * BottleneckSide;

    /// <summary>Throws <see cref="BadInputException"/> naming the offending value; returns this for chaining.</summary>
    public ModelConfig Validate()
    {
        if (InChannels is not (1 or 3))
            throw new BadInputException($"Images must have 1 (grey) or 3 (colour) channels, not {InChannels}.");
        if (Widths.Count == 0 || Widths.Any(w => w <= 0))
            throw new BadInputException($"--widths needs one or more positive numbers (got '{string.Join(',', Widths)}').");
        if (Blocks < 0) throw new BadInputException($"--blocks must be 0 or more (got {Blocks}).");
        if (Latent <= 0) throw new BadInputException($"--latent must be positive (got {Latent}).");
        if (Widths.Count > 8 || Widths.Any(w => w > 4096) || Latent > 65536 || Blocks > 64)
            throw new BadInputException($"This architecture is far larger than VaeKit is meant for (widths {string.Join(',', Widths)}, blocks {Blocks}, latent {Latent}).");
        if (ImageSize > 1024) throw new BadInputException($"--image-size {ImageSize} is too large; VaeKit takes images up to 1024 px.");
        int factor = 1 << (Widths.Count - 1);
        if (ImageSize <= 0 || ImageSize % factor != 0)
            throw new BadInputException(
                $"--image-size {ImageSize} does not fit {Widths.Count} stages: the encoder halves the image " +
                $"{Widths.Count - 1} times, so the size must be a positive multiple of {factor} " +
                $"(e.g. {Math.Max(factor, (ImageSize + factor / 2) / factor * factor)}), or use fewer --widths.");
        if (Norm == NormKind.Group && (Groups <= 0 || Widths.Any(w => w % Groups != 0)))
            throw new BadInputException($"--norm group needs --groups ({Groups}) to divide every width ({string.Join(',', Widths)}).");
        return this;
    }
}
