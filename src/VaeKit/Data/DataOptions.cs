using VaeKit.Config;

namespace VaeKit.Data;

/// <summary>What to load and how to preprocess it. Validated by <see cref="DatasetLoader.Load"/>.</summary>
public sealed record DataOptions
{
    /// <summary>Where the images come from, usually <see cref="DataSpec.Parse"/> of a <c>--data</c> text.</summary>
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
    /// Root of the decode cache (<see cref="CacheLocation.Off"/> for none). Null = <c>$VAEKIT_CACHE</c>, else
    /// <c>$XDG_CACHE_HOME/vaekit</c>, else <c>~/.cache/vaekit</c>.
    /// </summary>
    public CacheLocation? CacheDirectory { get; init; }

    /// <summary>The cache root this resolves to, or null when caching is off.</summary>
    public string? ResolveCacheDirectory()
    {
        if (CacheDirectory is not null) return CacheDirectory.Directory;
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
/// <c>cache-read</c> or <c>cache-write</c> with <paramref name="Done"/> of <paramref name="Total"/> items; or, with
/// <see cref="IsWarning"/>, a one-off warning in <paramref name="Stage"/> (e.g. the cache could not be written).
/// </summary>
public readonly record struct DecodeProgress(string Stage, int Done, int Total)
{
    /// <summary>True for a warning: <see cref="Stage"/> is its text, Done = Total = 0.</summary>
    public bool IsWarning { get; init; }

    /// <summary>A one-off warning (the front end says it is one).</summary>
    public static DecodeProgress Warning(string text) => new(text, 0, 0) { IsWarning = true };
}

/// <summary>What was loaded: printed by the CLI and stored with a training run (System.Text.Json friendly).</summary>
public sealed record DatasetDescription
{
    /// <summary><see cref="DataSpec.Describe"/> of the source.</summary>
    public required string Source { get; init; }

    /// <summary><c>synthetic</c>, <c>fashion-mnist</c>, <c>folder</c>, <c>zip</c> or <c>in-memory</c> (<see cref="LoadedDataset.FromImages"/>).</summary>
    public required string Kind { get; init; }

    /// <summary>Side of the square images, in pixels.</summary>
    public required int ImageSize { get; init; }

    /// <summary>1 (gray) or 3 (RGB).</summary>
    public required int Channels { get; init; }

    /// <summary>Images in the training set.</summary>
    public required int TrainCount { get; init; }

    /// <summary>Images in the validation set (possibly 0).</summary>
    public required int ValidationCount { get; init; }

    /// <summary>Images decoded successfully (train + validation).</summary>
    public required int Decoded { get; init; }

    /// <summary>Files that looked like images by name but could not be decoded.</summary>
    public required int Skipped { get; init; }

    /// <summary>Up to five skipped files as <c>relative/name: reason</c>.</summary>
    public required IReadOnlyList<string> SkippedExamples { get; init; }

    /// <summary>
    /// 16 hex digits identifying the source content (file names with their sizes and content hashes for a folder,
    /// CRCs for a zip, file names, sizes and times for Fashion-MNIST; synthetic count, seed and drawing version; the
    /// pixels of an in-memory set), independent of where the data lives. Same fingerprint, same images.
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

    /// <summary>The <see cref="DatasetDescription.Kind"/> of a data set built by <see cref="FromImages"/>.</summary>
    public const string InMemoryKind = "in-memory";

    /// <summary>
    /// A data set from images already in memory (e.g. generated, or decoded by the caller), split into train and
    /// validation as the loaders split files: the same fixed seed, the same rule for the validation count, both parts
    /// in the original order. The images are copied (onto the CPU), so <paramref name="all"/> is left as it was and
    /// stays the caller's to dispose; peak memory is twice the set's bytes while this runs.
    /// </summary>
    /// <param name="all">(N, S, S, C) uint8 images; for float (N, C, S, S) images in [0, 1] wrap them with
    /// <see cref="DecodedImages.FromFloat"/> first.</param>
    /// <param name="validationFraction">Share held out for validation, in [0, 1).</param>
    /// <param name="description">How the set is named in logs and run records (<see cref="DatasetDescription.Source"/>).</param>
    /// <returns>A data set whose <see cref="DatasetDescription.Fingerprint"/> is a hash of the shape and every pixel
    /// byte: the same images give the same fingerprint (so a run on them resumes), one changed pixel another.</returns>
    /// <exception cref="BadInputException">No images, a fraction outside [0, 1), or a fraction that leaves nothing to train on.</exception>
    public static LoadedDataset FromImages(DecodedImages all, double validationFraction = 0.05, string description = InMemoryKind)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentNullException.ThrowIfNull(description);
        int count = all.Count;
        if (count == 0) throw new BadInputException($"The in-memory data set '{description}' holds no images: pass at least one.");
        if (!(validationFraction is >= 0 and < 1))
            throw new BadInputException($"Validation fraction {validationFraction} is out of range: use a number from 0 up to (not including) 1, e.g. 0.05.");
        if (all.Channels is not (1 or 3))
            throw new BadInputException($"{all.Channels} channels is not supported: use 1 (gray) or 3 (RGB).");
        var isValidation = DatasetSplit.ValidationMask(count, validationFraction, Config.DataConfig.SplitSeed);
        var trainIndex = Enumerable.Range(0, count).Where(i => !isValidation[i]).Select(i => (long)i).ToArray();
        var validationIndex = Enumerable.Range(0, count).Where(i => isValidation[i]).Select(i => (long)i).ToArray();
        if (trainIndex.Length == 0)
            throw new BadInputException($"A validation fraction of {validationFraction} leaves none of the {count} images of '{description}' for training: use a smaller fraction.");

        byte[] fingerprint = all.ContentHash();
        DecodedImages Take(long[] indices)
        {
            using var index = TorchSharp.torch.tensor(indices, device: all.Pixels.device);
            using var picked = all.Pixels.index_select(0, index);
            return new DecodedImages(picked.cpu().contiguous());
        }
        var train = Take(trainIndex);
        DecodedImages validation;
        try { validation = Take(validationIndex); }
        catch { train.Dispose(); throw; }
        return new LoadedDataset(train, validation, new DatasetDescription
        {
            Source = description,
            Kind = InMemoryKind,
            ImageSize = all.Size,
            Channels = all.Channels,
            TrainCount = train.Count,
            ValidationCount = validation.Count,
            Decoded = count,
            Skipped = 0,
            SkippedExamples = [],
            Fingerprint = Convert.ToHexStringLower(fingerprint, 0, 8),
            ValidationFraction = validationFraction,
            FromCache = false,
        });
    }

    /// <summary>(N_train, S, S, C) uint8, in source order.</summary>
    public DecodedImages Train { get; }

    /// <summary>(N_val, S, S, C) uint8, in source order; may hold zero images.</summary>
    public DecodedImages Validation { get; }

    /// <summary>What was loaded: source, counts, skipped files, fingerprint.</summary>
    public DatasetDescription Description { get; }

    /// <summary>Frees both image sets.</summary>
    public void Dispose()
    {
        Train.Dispose();
        Validation.Dispose();
    }
}
