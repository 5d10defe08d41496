namespace VaeKit.Data;

/// <summary>What to load and how to preprocess it. Validated by <see cref="DatasetLoader.Load"/>.</summary>
public sealed record DataOptions
{
    public required DataSpec Source { get; init; }

    /// <summary>Side of the square images, in pixels.</summary>
    public int ImageSize { get; init; } = 32;

    /// <summary>1 (gray, BT.601 luma) or 3 (RGB); null = the source's own (3 for images and synthetic, 1 for Fashion-MNIST).</summary>
    public int? Channels { get; init; }

    /// <summary>Share of images held out for validation, in [0, 1). Ignored for Fashion-MNIST, whose t10k file is the validation set.</summary>
    public double ValidationFraction { get; init; } = 0.05;

    /// <summary>Seeds the train/validation split and the synthetic faces.</summary>
    public int Seed { get; init; }

    /// <summary>
    /// Root of the decode cache. Null = <c>$VAEKIT_CACHE</c>, else <c>$XDG_CACHE_HOME/vaekit</c>, else
    /// <c>~/.cache/vaekit</c>. Empty string = no caching.
    /// </summary>
    public string? CacheDirectory { get; init; }

    /// <summary>The cache root this resolves to, or null when caching is off.</summary>
    public string? ResolveCacheDirectory()
    {
        if (CacheDirectory is not null) return CacheDirectory.Length == 0 ? null : CacheDirectory;
        string? env = Environment.GetEnvironmentVariable("VAEKIT_CACHE");
        if (!string.IsNullOrEmpty(env)) return env;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Join(xdg, "vaekit");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return string.IsNullOrEmpty(home) ? null : Path.Join(home, ".cache", "vaekit");
    }
}

/// <summary>
/// Progress of <see cref="DatasetLoader.Load"/>: <paramref name="Stage"/> is <c>scan</c>, <c>decode</c>,
/// <c>cache-read</c> or <c>cache-write</c> with <paramref name="Done"/> of <paramref name="Total"/> items; a stage
/// starting with <c>warning: </c> is a one-off notice (e.g. the cache could not be written) with Done = Total = 0.
/// </summary>
public readonly record struct DecodeProgress(string Stage, int Done, int Total);

/// <summary>What was loaded: printed by the CLI and stored with a training run (System.Text.Json friendly).</summary>
public sealed record DatasetDescription
{
    /// <summary><see cref="DataSpec.Describe"/> of the source.</summary>
    public required string Source { get; init; }

    /// <summary><c>synthetic</c>, <c>fashion-mnist</c>, <c>folder</c> or <c>zip</c>.</summary>
    public required string Kind { get; init; }

    public required int ImageSize { get; init; }
    public required int Channels { get; init; }
    public required int TrainCount { get; init; }
    public required int ValidationCount { get; init; }

    /// <summary>Images decoded successfully (train + validation).</summary>
    public required int Decoded { get; init; }

    /// <summary>Files that looked like images by name but could not be decoded.</summary>
    public required int Skipped { get; init; }

    /// <summary>Up to five skipped files as <c>relative/name: reason</c>.</summary>
    public required IReadOnlyList<string> SkippedExamples { get; init; }

    /// <summary>
    /// 16 hex digits identifying the source content (file names, sizes, times or CRCs; synthetic count, seed and
    /// drawing version), independent of where the data lives. Same fingerprint, same images.
    /// </summary>
    public required string Fingerprint { get; init; }

    /// <summary>The validation share actually used: the option, or for Fashion-MNIST the t10k share of all images.</summary>
    public required double ValidationFraction { get; init; }

    /// <summary>True when the decoded images came from the on-disk cache instead of being decoded now.</summary>
    public required bool FromCache { get; init; }
}

/// <summary>The train and validation sets of one load. Disposing frees both tensors.</summary>
public sealed class LoadedDataset : IDisposable
{
    internal LoadedDataset(DecodedImages train, DecodedImages validation, DatasetDescription description)
    {
        Train = train;
        Validation = validation;
        Description = description;
    }

    /// <summary>(N_train, S, S, C) uint8, in source order.</summary>
    public DecodedImages Train { get; }

    /// <summary>(N_val, S, S, C) uint8, in source order; may hold zero images.</summary>
    public DecodedImages Validation { get; }

    public DatasetDescription Description { get; }

    public void Dispose()
    {
        Train.Dispose();
        Validation.Dispose();
    }
}
