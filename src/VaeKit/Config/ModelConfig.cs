using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace VaeKit.Config;

/// <summary>The built-in model kinds (<see cref="ModelConfig.Kind"/>); a user family adds its own.</summary>
public static class ModelKinds
{
    /// <summary>Deterministic AutoEncoder.</summary>
    public const string Ae = "ae";
    /// <summary>The lab's VAE: Gaussian posterior, N(0, I) prior, squared-error reconstruction.</summary>
    public const string Vae = "vae";
    /// <summary>σ-VAE: the VAE with a calibrated Gaussian decoder (Rybkin et al. 2021).</summary>
    public const string SigmaVae = "sigma-vae";
    /// <summary>VQ-VAE: a vector-quantised code (van den Oord et al. 2017).</summary>
    public const string VqVae = "vq-vae";
}

/// <summary>Normalisation inside residual blocks and before the heads.</summary>
public enum NormKind
{
    /// <summary>BatchNorm: statistics of the batch in training, running averages in evaluation.</summary>
    Batch,
    /// <summary>GroupNorm over <see cref="ModelConfig.Groups"/> channel groups of each image; independent of the batch.</summary>
    Group,
}

/// <summary>
/// Which model a run trains: its family (<see cref="Kind"/>), the shape of the symmetric residual CNN the built-in
/// families share (see README "Model"), and family options. Serialised as the "model" part of <c>config.json</c> and
/// inside every checkpoint, so a run directory describes itself; <see cref="Models.ModelFactory"/> builds from it.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The model family: ae, vae, sigma-vae, vq-vae, or a registered user family.</summary>
    public string Kind { get; init; } = ModelKinds.Vae;

    /// <summary>Family options beyond the shared shape (e.g. a VQ-VAE's codebook), as the family defines them.</summary>
    public JsonObject? Options { get; init; }

    /// <summary>Where a user family's assembly lives, so another process (<c>vae sample --run</c>) can build the model.</summary>
    public string? Assembly { get; init; }

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

    /// <summary>Normalisation in the residual blocks and before the heads; Group uses <see cref="Groups"/> groups.</summary>
    public NormKind Norm { get; init; } = NormKind.Batch;

    /// <summary>GroupNorm groups when <see cref="Norm"/> is Group; must divide every width.</summary>
    public int Groups { get; init; } = 8;

    /// <summary>Spatial side at the bottleneck: s / 2^(L-1).</summary>
    [JsonIgnore] public int BottleneckSide => ImageSize >> (Widths.Count - 1);

    /// <summary>Flattened encoder features: c[L-1] · side².</summary>
    [JsonIgnore] public int FlatFeatures => Widths[^1] * BottleneckSide * BottleneckSide;

    /// <summary>The family options as <typeparamref name="T"/> (defaults where absent).</summary>
    public T OptionsAs<T>() where T : new() =>
        Options is null ? new T() : Options.Deserialize<T>(Json.Compact) ?? new T();

    /// <summary>A copy with family option <paramref name="key"/> set to <paramref name="value"/> (text as given on the command line).</summary>
    public ModelConfig WithOption(string key, string value)
    {
        var options = Options?.DeepClone().AsObject() ?? [];
        options[key] = OptionValue(value);
        return this with { Options = options };
    }

    /// <summary>The JSON value of a family option written as text: whole numbers and reals become JSON numbers,
    /// true/false booleans, anything else a string (how config.json stores --model-option KEY=VALUE).</summary>
    public static JsonNode OptionValue(string text)
    {
        text = text.Trim();
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double number))
            return Math.Abs(number) < long.MaxValue && number == Math.Floor(number) && !text.Contains('.')
                ? JsonValue.Create((long)number)
                : JsonValue.Create(number);
        return bool.TryParse(text, out bool flag) ? JsonValue.Create(flag) : JsonValue.Create(text);
    }

    /// <summary>A copy with <paramref name="options"/> as the family options.</summary>
    public ModelConfig WithOptions<T>(T options) => this with { Options = JsonSerializer.SerializeToNode(options, Json.Compact)!.AsObject() };

    /// <summary>The checks of the shared residual CNN: throws <see cref="BadInputException"/> naming the offending value.</summary>
    public ModelConfig ValidateConvolutional()
    {
        if (InChannels is not (1 or 3))
            throw new BadInputException($"Images must have 1 (grey) or 3 (colour) channels, not {InChannels}.");
        if (Widths.Count == 0 || Widths.Any(w => w <= 0))
            throw new BadInputException($"{Settings.Model.Widths} needs one or more positive numbers (got '{string.Join(',', Widths)}').");
        if (Blocks < 0) throw new BadInputException($"{Settings.Model.Blocks} must be 0 or more (got {Blocks}).");
        if (Latent <= 0) throw new BadInputException($"{Settings.Model.Latent} must be positive (got {Latent}).");
        if (Widths.Count > 8 || Widths.Any(w => w > 4096) || Latent > 65536 || Blocks > 64)
            throw new BadInputException($"This architecture is far larger than VaeKit is meant for (widths {string.Join(',', Widths)}, blocks {Blocks}, latent {Latent}).");
        if (ImageSize > 1024) throw new BadInputException($"{Settings.Model.ImageSize} {ImageSize} is too large; VaeKit takes images up to 1024 px.");
        int factor = 1 << (Widths.Count - 1);
        if (ImageSize <= 0 || ImageSize % factor != 0)
            throw new BadInputException(
                $"{Settings.Model.ImageSize} {ImageSize} does not fit {Widths.Count} stages: the encoder halves the image " +
                $"{Widths.Count - 1} times, so the size must be a positive multiple of {factor} " +
                $"(e.g. {Math.Max(factor, (ImageSize + factor / 2) / factor * factor)}), or use fewer {Settings.Model.Widths}.");
        if (Norm == NormKind.Group && (Groups <= 0 || Widths.Any(w => w % Groups != 0)))
            throw new BadInputException($"{Settings.Model.Norm} group needs {Settings.Model.Groups} ({Groups}) to divide every width ({string.Join(',', Widths)}).");
        return this;
    }
}
