using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>What <c>vae fd</c> reports: the Fréchet distance between two image sets in a feature network's features.</summary>
public sealed record FdReport
{
    /// <summary>The distance (FD): ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2(Σ_a^½ Σ_b Σ_a^½)^½) of the feature Gaussians.</summary>
    public double Fd { get; init; }
    /// <summary>Unbiased KID of the two sets in the same features (<see cref="KernelDistance"/>): mean over subsets.</summary>
    public double Kid { get; init; }
    /// <summary>Standard deviation of <see cref="Kid"/> over its subsets.</summary>
    public double KidStd { get; init; }
    /// <summary>Images per side in each of <see cref="Kid"/>'s subsets.</summary>
    public int KidSubsetSize { get; init; }
    /// <summary>Improved precision (k = 3) of the first set against the second: the share of --data images inside
    /// the --reference images' manifold; null with 3 images or fewer on a side.</summary>
    public double? Precision { get; init; }
    /// <summary>Improved recall (k = 3): the share of --reference images inside the --data images' manifold.</summary>
    public double? Recall { get; init; }
    /// <summary>The first set (--data).</summary>
    public required string Data { get; init; }
    /// <summary>The second set (--reference).</summary>
    public required string Reference { get; init; }
    /// <summary>Images of <see cref="Data"/> measured.</summary>
    public int DataImages { get; init; }
    /// <summary>Images of <see cref="Reference"/> measured.</summary>
    public int ReferenceImages { get; init; }
    /// <summary>The feature network: a shipped name or a file.</summary>
    public required string FdNet { get; init; }
    /// <summary>A caution about the measurement (the network was not trained on this kind of data), or null.</summary>
    public string? FdNote { get; init; }
    /// <summary>Wall time, seconds.</summary>
    public double Seconds { get; init; }
}

/// <summary>
/// The image-space Fréchet distance (FD): images → a fixed <see cref="FeatureNetwork"/>'s penultimate features → the
/// Fréchet distance between Gaussians fitted to two sets of them (<see cref="FrechetDistance"/>). Like FID, but in
/// features of a small network trained on the data's own kind; like FID, it is biased upwards at small N, so figures
/// compare only at the same N (<c>vae eval</c> reports a real-vs-real floor at its N).
/// </summary>
public static class ImageFrechet
{
    /// <summary>At most this many images per side (the usual FID convention of 10,000).</summary>
    public const int MaxImages = 10_000;

    /// <summary>Images per forward pass of the feature network.</summary>
    public const int BatchSize = 500;

    /// <summary>
    /// The caution a report carries when <paramref name="network"/> was not trained on data of
    /// <paramref name="dataKind"/> (a loader kind: fashion-mnist, synthetic, folder, zip); null when it was.
    /// </summary>
    public static string? Note(IFeatureExtractor network, string dataKind) =>
        (network.Source, dataKind) switch
        {
            ("shipped:fashion-mnist", "fashion-mnist") or ("shipped:faces", "synthetic") => null,
            ("shipped:faces", _) => $"FD in the features of the synthetic-faces network, which never saw {dataKind} images: compare such figures with each other, not with the synthetic faces'.",
            ("shipped:fashion-mnist", _) => $"FD in the features of the Fashion-MNIST network, which never saw {dataKind} images.",
            _ => null,
        };

    /// <summary>The shipped network for a loader kind: fashion-mnist for Fashion-MNIST, faces for everything else.</summary>
    public static string DefaultNetwork(string dataKind) => dataKind == "fashion-mnist" ? "fashion-mnist" : "faces";

    /// <summary>
    /// Features (N, F) float64 on the CPU of the first <paramref name="count"/> images of <paramref name="images"/>,
    /// in batches, without gradients, in evaluation mode.
    /// </summary>
    public static Tensor Features(IFeatureExtractor network, DecodedImages images, int count, Device device) =>
        Features(network, count, (start, b) => images.Pixels.narrow(0, start, b).to(device).permute(0, 3, 1, 2).to_type(ScalarType.Float32) / 255);

    /// <summary>
    /// Features (N, F) float64 on the CPU of <paramref name="count"/> images that <paramref name="batch"/> produces as
    /// (b, C, S, S) floats in [0, 1] for (start, b): a model's decodes, say. Each batch is made and measured inside
    /// its own dispose scope.
    /// </summary>
    public static Tensor Features(IFeatureExtractor network, int count, Func<int, int, Tensor> batch)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "at least one image");
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        try
        {
            for (int start = 0; start < count; start += BatchSize)
            {
                using var scope = NewDisposeScope();
                int b = Math.Min(BatchSize, count - start);
                var features = network.FeaturesOf(batch(start, b).to(network.Device));                     // (b, F)
                parts.Add(features.to_type(ScalarType.Float64).cpu().DetachFromDisposeScope());
            }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// The features (N, F) float64 on the CPU of the first <paramref name="count"/> of <paramref name="images"/>, read
    /// from the cache when a file of the same <paramref name="identity"/> (the data's fingerprint, split and count) and
    /// the same network is there, else computed and cached. <paramref name="cacheDirectory"/> null = no cache.
    /// </summary>
    public static Tensor ReferenceFeatures(IFeatureExtractor network, DecodedImages images, int count, Device device,
                                           string identity, string? cacheDirectory)
    {
        string fingerprint = Fingerprint(network, identity, count);
        string? path = cacheDirectory is null ? null : Path.Combine(cacheDirectory, "fd", fingerprint[..32] + ".safetensors");
        if (path is not null && FeatureCache.TryLoad(path, fingerprint, count) is { } cached) return cached;
        var features = Features(network, images, count, device);
        if (path is not null)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                FeatureCache.Save(path, features, fingerprint);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A cache that cannot be written costs time next run, never the result.
            }
        }
        return features;
    }

    /// <summary>What identifies reference features: the network's content, the images and their count.</summary>
    public static string Fingerprint(IFeatureExtractor network, string identity, int count) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"fd/v2/{network.ContentHash}/{identity}/{count}")));

    /// <summary>
    /// <c>vae fd</c>: the FD between the images of two data sources, each loaded as the loader does at the network's
    /// size and channels, at most <paramref name="limit"/> (≤ <see cref="MaxImages"/>) from each, training split first.
    /// </summary>
    public static FdReport Compare(string data, string reference, string? net, int? limit, string device = "auto", string? cacheDirectory = null,
                                   IProgress<DecodeProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (limit is < 2) throw new BadInputException($"fd.limit must be at least 2 (got {limit}).");
        var clock = Stopwatch.StartNew();
        var specA = DataSpec.Parse(data);
        var specB = DataSpec.Parse(reference);
        string kindA = Kind(specA), kindB = Kind(specB);
        string netName = net ?? (kindA == "fashion-mnist" && kindB == "fashion-mnist" ? "fashion-mnist" : "faces");
        var dev = TorchRuntime.ResolveDevice(device);
        using var network = FeatureExtractors.Load(netName, dev, new DataOptions { Source = specA, CacheDirectory = cacheDirectory }.ResolveCacheDirectory());
        int cap = Math.Min(limit ?? MaxImages, MaxImages);
        using var a = Load(specA, network, cacheDirectory, progress, cancellationToken);
        using var b = Load(specB, network, cacheDirectory, progress, cancellationToken);
        int na = Math.Min(cap, a.Count), nb = Math.Min(cap, b.Count);
        if (na < 2 || nb < 2) throw new BadInputException($"The FD needs at least 2 images on each side; {(na < 2 ? data : reference)} has {Math.Min(na, nb)}.");
        using var featuresA = Features(network, a, na, dev);
        using var featuresB = Features(network, b, nb, dev);
        using var statsA = FeatureStatistics.Of(featuresA);
        using var statsB = FeatureStatistics.Of(featuresB);
        var kid = KernelDistance.Between(featuresA, featuresB);
        var pr = Math.Min(na, nb) > PrecisionRecall.Neighbours ? PrecisionRecall.Between(featuresB, featuresA) : null;
        return new FdReport
        {
            Fd = FrechetDistance.Between(statsA, statsB),
            Kid = kid.Kid,
            KidStd = kid.Std,
            KidSubsetSize = kid.SubsetSize,
            Precision = pr?.Precision,
            Recall = pr?.Recall,
            Data = specA.Describe(),
            Reference = specB.Describe(),
            DataImages = na,
            ReferenceImages = nb,
            FdNet = network.Source,
            FdNote = Note(network, kindA) ?? Note(network, kindB),   // named or chosen, whichever side is foreign to it
            Seconds = Math.Round(clock.Elapsed.TotalSeconds, 2),
        };
    }

    private static string Kind(DataSpec spec) => spec switch
    {
        DataSpec.FashionMnist => "fashion-mnist",
        DataSpec.Synthetic => "synthetic",
        DataSpec.Zip => "zip",
        _ => "folder",
    };

    /// <summary>All of a source's images (training split, then validation) at the network's size and channels.</summary>
    private static DecodedImages Load(DataSpec spec, IFeatureExtractor network, string? cacheDirectory, IProgress<DecodeProgress>? progress, CancellationToken ct)
    {
        using var loaded = DatasetLoader.Load(new DataOptions
        {
            Source = spec, ImageSize = network.ImageSize, Channels = network.Channels, ValidationFraction = 0,
            Seed = Config.DataConfig.SplitSeed, CacheDirectory = cacheDirectory,
        }, progress, ct);
        using var scope = NewDisposeScope();
        return new DecodedImages(cat([loaded.Train.Pixels, loaded.Validation.Pixels], 0).DetachFromDisposeScope());
    }
}
