using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>
/// The unbiased kernel distance (KID, Bińkowski et al. 2018) between two feature sets: MMD² under the cubic
/// polynomial kernel k(x, y) = (xᵀy / d + 1)³, estimated on random subsets of equal size m drawn without
/// replacement from each side, and averaged over the subsets. Unlike the FD it has an unbiased estimator, so small N
/// does not push it up; its spread over the subsets says how far one figure can be trusted.
/// </summary>
/// <remarks>
/// The protocol is the one StyleGAN2-ADA's and clean-fid's KID use: 100 subsets of m = min(1000, N_a, N_b), except
/// that m is at most half the smaller set, so the subsets differ and their spread says something (those tools draw
/// the whole set every time when N ≤ 1,000, and report a spread of 0); from N = 2,000 on it is their protocol exactly.
/// Each subset's estimate is unbiased whatever m, so the mean is too. Per subset, with X and Y the two draws:
/// (Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)) / (m(m − 1)) − 2·Σ_{i,j} k(x_i, y_j) / m². With a single subset
/// m = min(1000, N_a, N_b): at m = N it is a permutation of the whole set, and the statistic does not depend on order,
/// so one subset at full size is the exact unbiased MMD² (tests/fd/scipy_quality.py checks that case).
/// </remarks>
public static class KernelDistance
{
    /// <summary>Subsets averaged (the published protocol's 100).</summary>
    public const int Subsets = 100;

    /// <summary>Largest subset (the published protocol's 1,000).</summary>
    public const int MaxSubsetSize = 1000;

    /// <summary>The estimate: <see cref="Kid"/> the mean over subsets, <see cref="Std"/> their standard deviation,
    /// and the subsets behind them.</summary>
    public sealed record Estimate(double Kid, double Std, int Subsets, int SubsetSize);

    /// <summary>
    /// a (N_a ≥ 2, d) and b (N_b ≥ 2, d), any float dtype and device → the KID estimate over <paramref name="subsets"/>
    /// random subsets of min(<paramref name="maxSubsetSize"/>, N_a, N_b) (with several subsets, at most half the smaller
    /// set), drawn by a generator seeded with <paramref name="seed"/>.
    /// </summary>
    public static Estimate Between(Tensor a, Tensor b, int subsets = Subsets, int maxSubsetSize = MaxSubsetSize, int seed = 0)
    {
        Shapes(a, b, 2, "KID");
        if (subsets < 1) throw new ArgumentOutOfRangeException(nameof(subsets), "at least one subset");
        if (maxSubsetSize < 2) throw new ArgumentOutOfRangeException(nameof(maxSubsetSize), "subsets of at least 2");
        using var scope = NewDisposeScope();
        var x = a.detach().to(ScalarType.Float64, CPU);                      // (N_a, d)
        var y = b.detach().to(ScalarType.Float64, CPU);                      // (N_b, d)
        long d = x.shape[1];
        long smaller = Math.Min(x.shape[0], y.shape[0]);
        long m = Math.Min(maxSubsetSize, subsets > 1 ? Math.Max(2, smaller / 2) : smaller);
        using var generator = new Generator((ulong)seed + 0x1C1DUL);
        var values = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            using var inner = NewDisposeScope();
            var xs = x.index_select(0, randperm(x.shape[0], generator: generator).narrow(0, 0, m));   // (m, d)
            var ys = y.index_select(0, randperm(y.shape[0], generator: generator).narrow(0, 0, m));   // (m, d)
            var kxx = (xs.matmul(xs.T) / d + 1).pow(3);                                               // (m, m)
            var kyy = (ys.matmul(ys.T) / d + 1).pow(3);
            var kxy = (xs.matmul(ys.T) / d + 1).pow(3);
            var within = kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum();
            values[s] = (within / (m * (m - 1)) - 2 * kxy.sum() / (m * m)).item<double>();
        }
        double mean = values.Average();
        double std = subsets > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (subsets - 1)) : 0;
        return new Estimate(mean, std, subsets, (int)m);
    }

    internal static void Shapes(Tensor a, Tensor b, long minimum, string what)
    {
        if (a.dim() != 2 || b.dim() != 2 || a.shape[0] < minimum || b.shape[0] < minimum)
            throw new ArgumentException($"{what} needs two feature sets (N ≥ {minimum}, d), not shapes " +
                                        $"[{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}]");
        if (a.shape[1] != b.shape[1])
            throw new ArgumentException($"{what} needs features of the same dimension, not {a.shape[1]} and {b.shape[1]}");
    }
}

/// <summary>
/// Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around its
/// points, each ball's radius the distance to that point's k-th nearest neighbour in the same set. Precision is the
/// share of generated points inside the real manifold (fidelity: are the samples like real images?); recall is the
/// share of real points inside the generated manifold (diversity: is every kind of real image generated?). A blurry
/// but varied generator has low precision and fair recall; one that repeats a few good images, the reverse.
/// </summary>
public static class PrecisionRecall
{
    /// <summary>The neighbour that sets a ball's radius: the paper's k = 3.</summary>
    public const int Neighbours = 3;

    /// <summary>Rows of a distance matrix computed at once (1,000 × N float64: 80 MB at N = 10,000).</summary>
    private const int Chunk = 1000;

    /// <summary>Precision (generated inside real) and recall (real inside generated), each in [0, 1].</summary>
    public sealed record Result(double Precision, double Recall, int Neighbours);

    /// <summary>
    /// real (N_r &gt; k, d) and generated (N_g &gt; k, d), any float dtype and device → improved precision and recall
    /// with k = <paramref name="k"/>, in Euclidean distance, float64, a point on a ball's boundary counting as inside.
    /// </summary>
    public static Result Between(Tensor real, Tensor generated, int k = Neighbours)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), "k must be at least 1");
        KernelDistance.Shapes(real, generated, k + 1, "Precision and recall");
        using var scope = NewDisposeScope();
        var r = real.detach().to(ScalarType.Float64, CPU);
        var g = generated.detach().to(ScalarType.Float64, CPU);
        var realRadii = Radii(r, k);                 // (N_r)
        var generatedRadii = Radii(g, k);            // (N_g)
        return new Result(Covered(g, r, realRadii), Covered(r, g, generatedRadii), k);
    }

    /// <summary>points (N, d) → (N): each point's distance to its k-th nearest other point of the set (itself, at
    /// distance 0, is the first of the k + 1 nearest).</summary>
    private static Tensor Radii(Tensor points, int k)
    {
        var parts = new List<Tensor>();
        for (long start = 0; start < points.shape[0]; start += Chunk)
        {
            using var inner = NewDisposeScope();
            var rows = points.narrow(0, start, Math.Min(Chunk, points.shape[0] - start));
            var distances = cdist(rows, points);                                             // (c, N)
            parts.Add(distances.topk(k + 1, dim: 1, largest: false).values.select(1, k).MoveToOuterDisposeScope());
        }
        return cat(parts, 0);
    }

    /// <summary>The share of <paramref name="points"/> (N, d) within radii[j] of some centres[j] (M, d).</summary>
    private static double Covered(Tensor points, Tensor centres, Tensor radii)
    {
        long inside = 0;
        for (long start = 0; start < points.shape[0]; start += Chunk)
        {
            using var inner = NewDisposeScope();
            var rows = points.narrow(0, start, Math.Min(Chunk, points.shape[0] - start));
            var distances = cdist(rows, centres);                                             // (c, M)
            inside += (distances <= radii.unsqueeze(0)).any(1).sum().item<long>();
        }
        return (double)inside / points.shape[0];
    }
}
