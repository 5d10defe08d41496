using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>What the encoded data looks like in latent space: active units and the Fréchet distance to the prior.</summary>
public static class LatentStatistics
{
    /// <summary>Burda, Grosse and Salakhutdinov (2016): a latent dimension is active when the variance of its code
    /// over the data, Var_x(E_q[z_i | x]), exceeds 0.01.</summary>
    public const double ActiveUnitThreshold = 0.01;

    /// <summary>codes (N, z) → (z) variance of each dimension over the data (unbiased, float64).</summary>
    public static Tensor CodeVariance(Tensor codes) => codes.to_type(ScalarType.Float64).var(0, unbiased: true);

    /// <summary>codes (N, z) → how many dimensions have a variance over the data above <paramref name="threshold"/>.</summary>
    public static int ActiveUnits(Tensor codes, double threshold = ActiveUnitThreshold)
    {
        using var scope = NewDisposeScope();
        return (int)CodeVariance(codes).gt(threshold).sum().item<long>();
    }

    /// <summary>
    /// codes (N, z) → the Fréchet distance between N(0, I) and the Gaussian fitted to the codes (sample mean m,
    /// unbiased covariance Σ). See <see cref="FrechetToStandardNormal(Tensor, Tensor)"/>.
    /// </summary>
    public static double FrechetToStandardNormal(Tensor codes)
    {
        if (codes.dim() != 2 || codes.shape[0] < 2) throw new ArgumentException("the Fréchet distance needs codes (N ≥ 2, z)");
        using var scope = NewDisposeScope();
        var c = codes.to_type(ScalarType.Float64);
        var mean = c.mean([0]);                                          // (z)
        var centred = c - mean;
        var covariance = centred.T.matmul(centred) / (c.shape[0] - 1);   // (z, z)
        return FrechetToStandardNormal(mean, covariance);
    }

    /// <summary>
    /// The Fréchet (2-Wasserstein) distance d² between N(0, I) and N(m, Σ), in float64:
    /// d² = ‖m‖² + tr(Σ) + z − 2·tr(Σ^½) (Dowson and Landau 1982; the FID formula with one side the prior).
    /// tr(Σ^½) is Σ √λ over the eigenvalues of the symmetrised Σ, negative round-off clamped to 0.
    /// </summary>
    public static double FrechetToStandardNormal(Tensor mean, Tensor covariance)
    {
        using var scope = NewDisposeScope();
        var m = mean.to_type(ScalarType.Float64);
        var s = covariance.to_type(ScalarType.Float64);
        s = (s + s.T) / 2;
        var eigenvalues = linalg.eigvalsh(s).clamp_min(0);
        long z = m.shape[0];
        var d2 = m.square().sum() + s.trace() + z - 2 * eigenvalues.sqrt().sum();
        return Math.Max(0, d2.item<double>());
    }
}
