using VaeKit.Export;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>
/// A feature network's features of a fixed image set, kept on disk so the next evaluation of the same images skips
/// the network: one safetensors file holding "features" (N, d) float64, with the caller's fingerprint of what they
/// came from (network, images, count) in the metadata. The FD's statistics, the KID and precision/recall are all
/// computed from these.
/// </summary>
public static class FeatureCache
{
    /// <summary>Metadata key of the fingerprint <see cref="TryLoad"/> compares.</summary>
    public const string FingerprintKey = "fingerprint";

    /// <summary>Writes <paramref name="features"/> (N, d), any float dtype and device, as float64 under
    /// <paramref name="fingerprint"/>, atomically (<see cref="SafeTensors.Write"/> renames a temporary file over the path).</summary>
    public static void Save(string path, Tensor features, string fingerprint)
    {
        if (features.dim() != 2) throw new ArgumentException($"features must be (N, d), not shape [{string.Join(", ", features.shape)}]", nameof(features));
        using var f = features.detach().to(ScalarType.Float64, CPU).contiguous();
        SafeTensors.Write(path, [("features", f)], new Dictionary<string, string> { [FingerprintKey] = fingerprint });
    }

    /// <summary>
    /// The (<paramref name="count"/>, d) float64 features saved by <see cref="Save"/> under <paramref name="fingerprint"/>;
    /// null when the file is missing, unreadable, truncated, not such a file, of another row count or saved under
    /// another fingerprint. A cache miss, never an exception: the caller recomputes.
    /// </summary>
    public static Tensor? TryLoad(string path, string fingerprint, long count)
    {
        if (!File.Exists(path)) return null;
        Dictionary<string, Tensor>? tensors = null;
        try
        {
            // The header first (cheap), so a stale cache costs no tensor reads. A writer renaming a new file over
            // path between the two reads is not guarded against: callers keep one cache file per fingerprint.
            var metadata = SafeTensors.ReadHeader(path).Metadata;
            if (!metadata.TryGetValue(FingerprintKey, out var saved) || saved != fingerprint) return null;
            tensors = SafeTensors.ReadAll(path);
            if (!tensors.Remove("features", out var features)) return null;
            if (features.dtype == ScalarType.Float64 && features.dim() == 2 && features.shape[0] == count) return features;
            features.Dispose();
            return null;
        }
        catch (Exception e) when (e is BadInputException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return null;   // unreadable, truncated or not a safetensors file
        }
        finally
        {
            if (tensors is not null)
                foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
