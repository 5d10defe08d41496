namespace VaeKit.Config;

/// <summary>
/// Named architectures (<c>--preset</c>). Parameter counts are for the VAE with 3 input channels; README lists them.
/// The two bench presets are frozen: issue-tracked benchmarks compare against PyTorch on exactly these shapes.
/// </summary>
public static class Presets
{
    /// <summary>The lab's starting point: 225,427 parameters at 32 px (under 250k).</summary>
    public static readonly ModelConfig Tiny = new() { ImageSize = 32, Widths = [16, 24, 32, 32], Blocks = 1, Latent = 32 };

    /// <summary>A stronger 32 px model: 2,163,075 parameters, still trainable on a CPU.</summary>
    public static readonly ModelConfig Small = new() { ImageSize = 32, Widths = [32, 64, 96, 128], Blocks = 1, Latent = 64 };

    /// <summary>64 px, 6,745,155 parameters: the anime-face model for a GPU.</summary>
    public static readonly ModelConfig Base = new() { ImageSize = 64, Widths = [32, 64, 128, 128], Blocks = 2, Latent = 128 };

    /// <summary>The lab's ceiling at 64 px: 17,630,403 parameters (≤ 20M), five stages down to 4×4.</summary>
    public static readonly ModelConfig Large = new() { ImageSize = 64, Widths = [32, 64, 128, 256, 256], Blocks = 2, Latent = 256 };

    /// <summary>Benchmark shape, 32 px: 675,363 parameters. Do not change.</summary>
    public static readonly ModelConfig BenchS = new() { ImageSize = 32, Widths = [16, 32, 64], Blocks = 1, Latent = 32 };

    /// <summary>Benchmark shape, 64 px: 10,826,563 parameters. Do not change.</summary>
    public static readonly ModelConfig BenchM = new() { ImageSize = 64, Widths = [32, 64, 128, 256], Blocks = 1, Latent = 128 };

    /// <summary>Every preset by its CLI name (tiny, small, base, large, bench-s, bench-m).</summary>
    public static IReadOnlyDictionary<string, ModelConfig> All { get; } = new Dictionary<string, ModelConfig>
    {
        ["tiny"] = Tiny, ["small"] = Small, ["base"] = Base, ["large"] = Large, ["bench-s"] = BenchS, ["bench-m"] = BenchM,
    };

    /// <summary>The preset called <paramref name="name"/>; throws <see cref="BadInputException"/> listing the known names when there is none.</summary>
    public static ModelConfig Get(string name) =>
        All.TryGetValue(name, out var preset)
            ? preset
            : throw new BadInputException($"Unknown preset '{name}'. Choose one of: {string.Join(", ", All.Keys)}.");
}
