using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;

namespace VaeKit.Data;

/// <summary>
/// Loads a data set described by <see cref="DataOptions"/>: lists the source, takes the decoded images from the cache
/// or decodes them in parallel (and caches them), then splits train/validation. Images are (S, S, C) uint8,
/// center-cropped and antialiased (see <see cref="ImageDecoder"/>).
/// </summary>
public static class DatasetLoader
{
    /// <summary>Largest accepted <see cref="DataOptions.ImageSize"/>, in pixels.</summary>
    public const int MaxImageSize = 1024;

    /// <summary>Images per work item: big enough to amortise scheduling, small enough to balance two slow files.</summary>
    private const int ChunkSize = 32;

    /// <summary>Loads, decodes (or reads from cache) and splits the data set.</summary>
    /// <param name="options">What to load; <see cref="DataOptions.Source"/> usually comes from <see cref="DataSpec.Parse"/>.</param>
    /// <param name="progress">Stages <c>scan</c>, <c>decode</c>, <c>cache-read</c>, <c>cache-write</c> and <c>warning: …</c> notices; reported from worker threads.</param>
    /// <param name="cancellationToken">Stops scanning and decoding between images.</param>
    /// <exception cref="BadInputException">The source or an option is unusable; the message names the path and the fix.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; nothing is left allocated.</exception>
    public static LoadedDataset Load(DataOptions options, IProgress<DecodeProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Source);
        string? cacheRoot = options.ResolveCacheDirectory();
        var plan = Plan(options, cacheRoot, progress, cancellationToken);

        string? cachePath = cacheRoot is null
            ? null
            : DatasetCache.PathFor(cacheRoot, DatasetCache.Key(plan.Kind, plan.Fingerprint, options.ImageSize, plan.Channels));

        var set = cachePath is null ? null : DatasetCache.TryRead(cachePath, plan.Kind, options.ImageSize, plan.Channels, progress, cancellationToken);
        bool fromCache = set is not null;
        if (set is null)
        {
            set = plan.Decode(progress, cancellationToken);
            if (cachePath is not null) DatasetCache.TryWrite(cachePath, plan.Kind, set, progress);
        }

        try
        {
            return Split(set, options, plan, fromCache);
        }
        catch
        {
            set.Images.Dispose();
            throw;
        }
    }

    /// <summary>A source made ready to decode: its identity for the cache and how to decode it.</summary>
    private sealed record SourcePlan(string Kind, string Description, byte[] Fingerprint, int Channels,
        Func<IProgress<DecodeProgress>?, CancellationToken, DecodedSet> Decode);

    private static SourcePlan Plan(DataOptions options, string? cacheRoot, IProgress<DecodeProgress>? progress, CancellationToken cancellationToken)
    {
        int size = options.ImageSize;
        if (size is < 1 or > MaxImageSize)
            throw new BadInputException($"Image size {size} is out of range: use a side between 1 and {MaxImageSize} pixels.");
        if (options.Channels is { } c && c is not (1 or 3))
            throw new BadInputException($"{c} channels is not supported: use 1 (gray) or 3 (RGB).");
        double fraction = options.ValidationFraction;
        if (!(fraction is >= 0 and < 1))
            throw new BadInputException($"Validation fraction {fraction} is out of range: use a number from 0 up to (not including) 1, e.g. 0.05.");

        var spec = options.Source;
        switch (spec)
        {
            case DataSpec.Synthetic synthetic:
                {
                    if (synthetic.Count < 1) throw new BadInputException($"A synthetic data set needs at least one image, not {synthetic.Count}: use e.g. synthetic:{DataSpec.DefaultSyntheticCount}.");
                    if (size is < SyntheticFaces.MinSize or > SyntheticFaces.MaxSize)
                        throw new BadInputException($"Synthetic faces are drawn at {SyntheticFaces.MinSize} to {SyntheticFaces.MaxSize} px, not {size}: pick {Settings.Model.ImageSize} in that range.");
                    int channels = options.Channels ?? 3;
                    var fingerprint = Hash($"synthetic/{synthetic.Count}/{options.Seed}/{SyntheticFaces.Version}");
                    return new SourcePlan("synthetic", spec.Describe(), fingerprint, channels,
                        (p, ct) => DecodeSynthetic(synthetic.Count, options.Seed, size, channels, p, ct));
                }
            case DataSpec.FashionMnist fashion:
                {
                    var (train, test) = FashionMnistFiles(fashion.Directory);
                    int channels = options.Channels ?? 1;
                    var fingerprint = Hash(string.Join('\n', new[] { train, test }.Select(f =>
                        { var i = new FileInfo(f); return $"{i.Name}/{i.Length}/{i.LastWriteTimeUtc.Ticks}"; })));
                    return new SourcePlan("fashion-mnist", spec.Describe(), fingerprint, channels,
                        (p, ct) => DecodeFashionMnist(train, test, size, channels, p, ct));
                }
            case DataSpec.Folder or DataSpec.Zip:
                {
                    progress?.Report(new DecodeProgress("scan", 0, 0));
                    ImageFileSource files = spec is DataSpec.Folder folder
                        ? FolderSource.Scan(folder.Path, cacheRoot, cancellationToken)
                        : ZipSource.Scan(((DataSpec.Zip)spec).Path, cancellationToken);
                    progress?.Report(new DecodeProgress("scan", files.Names.Count, files.Names.Count));
                    int channels = options.Channels ?? 3;
                    string kind = spec is DataSpec.Folder ? "folder" : "zip";
                    return new SourcePlan(kind, spec.Describe(), files.Fingerprint, channels,
                        (p, ct) => DecodeFiles(files, spec.Describe(), size, channels, p, ct));
                }
            default:
                throw new ArgumentException($"unknown data source {spec.GetType().Name}", nameof(options));
        }
    }

    private static byte[] Hash(string text) => SHA256.HashData(Encoding.UTF8.GetBytes(text));

    // ---------------------------------------------------------------- sources

    private static DecodedSet DecodeSynthetic(int count, int seed, int size, int channels, IProgress<DecodeProgress>? progress, CancellationToken ct) =>
        DecodeParallel(count, size, channels,
            createWorker: () => new SyntheticWorker(channels == 1 ? new byte[size * size * 3] : null),
            tryFill: (SyntheticWorker w, int i, Span<byte> dest, out string? error) =>
            {
                if (w.Rgb is null) SyntheticFaces.Render(seed, i, size, dest);
                else
                {
                    SyntheticFaces.Render(seed, i, size, w.Rgb);
                    ImageDecoder.RgbToGray(w.Rgb, dest);
                }
                error = null;
                return true;
            },
            nameOf: i => $"face {i}", what: "synthetic faces", fixedTrainCount: null, progress, ct);

    private sealed record SyntheticWorker(byte[]? Rgb) : IDisposable
    {
        public void Dispose() { }
    }

    private const string FashionInstallHint = "install it with `apt-get install dataset-fashion-mnist` or pass fashion-mnist:PATH to a folder holding train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz";

    /// <summary>Finds the train and t10k image files, gzip-compressed or not.</summary>
    private static (string Train, string Test) FashionMnistFiles(string directory)
    {
        if (!Directory.Exists(directory))
            throw new BadInputException($"Fashion-MNIST folder {directory} does not exist: {FashionInstallHint}.");
        string Find(string stem)
        {
            foreach (string name in new[] { stem + ".gz", stem })
            {
                string path = Path.Join(directory, name);
                if (File.Exists(path)) return path;
            }
            throw new BadInputException($"Fashion-MNIST folder {directory} has no {stem}.gz: {FashionInstallHint}.");
        }
        return (Find("train-images-idx3-ubyte"), Find("t10k-images-idx3-ubyte"));
    }

    private static DecodedSet DecodeFashionMnist(string trainPath, string testPath, int size, int channels, IProgress<DecodeProgress>? progress, CancellationToken ct)
    {
        progress?.Report(new DecodeProgress("read", 0, 2));
        var train = IdxReader.ReadImages(trainPath);
        progress?.Report(new DecodeProgress("read", 1, 2));
        var test = IdxReader.ReadImages(testPath);
        progress?.Report(new DecodeProgress("read", 2, 2));
        if (train.Count == 0) throw new BadInputException($"The Fashion-MNIST training file {trainPath} holds no images; {FashionInstallHint}.");
        ct.ThrowIfCancellationRequested();

        return DecodeParallel(train.Count + test.Count, size, channels,
            createWorker: () => new ImageDecoder(size, channels),
            tryFill: (ImageDecoder decoder, int i, Span<byte> dest, out string? error) =>
            {
                var (file, j) = i < train.Count ? (train, i) : (test, i - train.Count);
                decoder.FromGray(file.Image(j), file.Columns, file.Rows, dest);
                error = null;
                return true;
            },
            nameOf: i => i < train.Count ? $"train {i}" : $"t10k {i - train.Count}", what: "Fashion-MNIST images",
            fixedTrainCount: train.Count, progress, ct);
    }

    private static DecodedSet DecodeFiles(ImageFileSource files, string described, int size, int channels, IProgress<DecodeProgress>? progress, CancellationToken ct) =>
        DecodeParallel(files.Names.Count, size, channels,
            createWorker: () => new FileWorker(files.OpenReader(), new ImageDecoder(size, channels)),
            tryFill: (FileWorker w, int i, Span<byte> dest, out string? error) =>
            {
                int length;
                try { length = w.Reader.Read(i, ref w.Buffer); }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    error = $"unreadable ({e.Message})";
                    return false;
                }
                return w.Decoder.TryDecode(w.Buffer.AsSpan(0, length), dest, out error);
            },
            nameOf: i => files.Names[i], what: described, fixedTrainCount: null, progress, ct);

    private sealed class FileWorker(IImageFileReader reader, ImageDecoder decoder) : IDisposable
    {
        public readonly IImageFileReader Reader = reader;
        public readonly ImageDecoder Decoder = decoder;
        public byte[] Buffer = new byte[1 << 16];   // grows to the largest file seen by this worker

        public void Dispose()
        {
            Reader.Dispose();
            Decoder.Dispose();
        }
    }

    // ---------------------------------------------------------------- parallel decode

    private delegate bool TryFill<in TWorker>(TWorker worker, int index, Span<byte> dest, out string? error);

    /// <summary>
    /// Fills image slots 0..count-1 in parallel (one <typeparamref name="TWorker"/> per concurrent task, reused across
    /// chunks), then moves the good images to the front so the result holds exactly the decoded ones, in order.
    /// </summary>
    /// <exception cref="BadInputException">No image could be decoded.</exception>
    private static DecodedSet DecodeParallel<TWorker>(int count, int size, int channels, Func<TWorker> createWorker,
        TryFill<TWorker> tryFill, Func<int, string> nameOf, string what, int? fixedTrainCount,
        IProgress<DecodeProgress>? progress, CancellationToken ct) where TWorker : IDisposable
    {
        var images = DecodedImages.Allocate(count, size, channels);
        var ok = new bool[count];
        var errors = new string?[count];
        var idle = new System.Collections.Concurrent.ConcurrentBag<TWorker>();
        var created = new List<TWorker>();
        int done = 0;
        try
        {
            progress?.Report(new DecodeProgress("decode", 0, count));
            var parallel = new ParallelOptions { CancellationToken = ct, MaxDegreeOfParallelism = Environment.ProcessorCount };
            Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0, count, ChunkSize), parallel, range =>
            {
                // Workers (Skia bitmaps, zip handles) are pooled rather than made per chunk or per Parallel replica.
                if (!idle.TryTake(out var worker))
                {
                    worker = createWorker();
                    lock (created) created.Add(worker);
                }
                try
                {
                    for (int i = range.Item1; i < range.Item2; i++)
                    {
                        ct.ThrowIfCancellationRequested();
                        ok[i] = tryFill(worker, i, images.ImageSpan(i), out errors[i]);
                    }
                }
                finally { idle.Add(worker); }
                int now = Interlocked.Add(ref done, range.Item2 - range.Item1);
                progress?.Report(new DecodeProgress("decode", now, count));
            });
        }
        catch (Exception e)
        {
            images.Dispose();
            // Parallel wraps worker failures in an AggregateException: surface the user's problem (or the only one) as is.
            if (e is AggregateException aggregate)
            {
                var first = aggregate.InnerExceptions.FirstOrDefault(x => x is BadInputException)
                            ?? (aggregate.InnerExceptions.Count == 1 ? aggregate.InnerExceptions[0] : null);
                if (first is not null) ExceptionDispatchInfo.Throw(first);
            }
            throw;
        }
        finally
        {
            foreach (var worker in created) worker.Dispose();
        }

        int good = 0;
        var examples = new List<string>();
        for (int i = 0; i < count; i++)
        {
            if (ok[i])
            {
                if (good != i) images.ImageSpan(i).CopyTo(images.ImageSpan(good));   // good < i: slots never overlap
                good++;
            }
            else if (examples.Count < 5) examples.Add($"{nameOf(i)}: {errors[i]}");
        }
        if (good == 0)
        {
            images.Dispose();
            throw new BadInputException($"None of the {count} image files in {what} could be decoded (e.g. {examples[0]}): check the files or pass another data set.");
        }
        if (good == count) return new DecodedSet(images, 0, examples, fixedTrainCount);

        // A view of the first `good` slots; it shares (and keeps alive) the storage, so nothing is copied.
        var compact = new DecodedImages(images.Pixels.narrow(0, 0, good));
        images.Dispose();
        return new DecodedSet(compact, count - good, examples, fixedTrainCount);
    }

    // ---------------------------------------------------------------- split

    /// <summary>
    /// Splits in place: validation images are set aside, training images slide to the front (keeping their order),
    /// validation images go behind them, and Train/Validation become views of the two ranges. Peak memory is the set
    /// plus the validation share, instead of twice the set as with copying index_select.
    /// </summary>
    private static LoadedDataset Split(DecodedSet set, DataOptions options, SourcePlan plan, bool fromCache)
    {
        var all = set.Images;
        int count = all.Count;
        int trainCount;
        double fraction;
        if (set.FixedTrainCount is { } fixedTrain)
        {
            trainCount = fixedTrain;
            fraction = (double)(count - fixedTrain) / count;
        }
        else
        {
            var isValidation = DatasetSplit.ValidationMask(count, options.ValidationFraction, options.Seed);
            int validationCount = isValidation.Count(v => v);
            trainCount = count - validationCount;
            if (trainCount == 0)
                throw new BadInputException($"A validation fraction of {options.ValidationFraction} leaves none of the {count} images of {plan.Description} for training: use a smaller fraction.");
            fraction = options.ValidationFraction;

            var heldOut = new byte[validationCount][];
            for (int i = 0, v = 0; i < count; i++)
                if (isValidation[i]) heldOut[v++] = all.ImageSpan(i).ToArray();
            for (int i = 0, t = 0; i < count; i++)
                if (!isValidation[i])
                {
                    if (t != i) all.ImageSpan(i).CopyTo(all.ImageSpan(t));   // t ≤ i: moves only forward
                    t++;
                }
            for (int v = 0; v < validationCount; v++) heldOut[v].CopyTo(all.ImageSpan(trainCount + v));
        }

        if (trainCount == 0)
            throw new BadInputException($"{plan.Description} has no training images: pass a data set that does.");

        var train = new DecodedImages(all.Pixels.narrow(0, 0, trainCount));
        var validation = new DecodedImages(all.Pixels.narrow(0, trainCount, count - trainCount));
        all.Dispose();   // the views keep the storage alive

        var description = new DatasetDescription
        {
            Source = plan.Description,
            Kind = plan.Kind,
            ImageSize = options.ImageSize,
            Channels = plan.Channels,
            TrainCount = train.Count,
            ValidationCount = validation.Count,
            Decoded = count,
            Skipped = set.Skipped,
            SkippedExamples = set.SkippedExamples,
            Fingerprint = Convert.ToHexStringLower(plan.Fingerprint, 0, 8),
            ValidationFraction = fraction,
            FromCache = fromCache,
        };
        return new LoadedDataset(train, validation, description);
    }
}
