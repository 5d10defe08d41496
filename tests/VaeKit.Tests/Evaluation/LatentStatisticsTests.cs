using VaeKit.Evaluation;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

public class LatentStatisticsTests
{
    [Fact]
    public void Active_units_count_the_dimensions_whose_code_varies_over_the_data()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var noise = randn(5000, 4, dtype: ScalarType.Float64);
        // standard deviations 1, 0.05 (variance 0.0025), 0.2 (variance 0.04) and 0 around different means
        var codes = noise * tensor(new[] { 1.0, 0.05, 0.2, 0.0 }) + tensor(new[] { 3.0, -1.0, 0.0, 7.0 });
        Assert.Equal(2, LatentStatistics.ActiveUnits(codes));
        Assert.Equal(0, LatentStatistics.ActiveUnits(zeros(10, 4)));
    }

    [Fact]
    public void Frechet_distance_of_the_prior_to_itself_is_zero()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(0.0, LatentStatistics.FrechetToStandardNormal(zeros(6, dtype: ScalarType.Float64), eye(6, dtype: ScalarType.Float64)), 10);
        manual_seed(5);
        double sampled = LatentStatistics.FrechetToStandardNormal(randn(50_000, 6, dtype: ScalarType.Float64));
        Assert.True(sampled < 0.01, $"{sampled}");
    }

    [Fact]
    public void Frechet_distance_of_a_shifted_scaled_gaussian_matches_the_closed_form()
    {
        using var scope = NewDisposeScope();
        // N(m, Σ) vs N(0, I) with Σ = R·diag(4, 1, 0.25)·Rᵀ: d² = ‖m‖² + Σ_i (√λ_i − 1)² = 5 + 1 + 0 + 0.25,
        // whatever the rotation R (so the eigenvalues, not the diagonal, must be used).
        var mean = tensor(new[] { 1.0, 2.0, 0.0 });
        double c = Math.Cos(0.7), s = Math.Sin(0.7);
        var rotation = tensor(new[,] { { c, -s, 0 }, { s, c, 0 }, { 0, 0, 1.0 } });
        var covariance = rotation.matmul(diag(tensor(new[] { 4.0, 1.0, 0.25 }))).matmul(rotation.T);
        Assert.Equal(6.25, LatentStatistics.FrechetToStandardNormal(mean, covariance), 9);

        manual_seed(6);
        var codes = randn(100_000, 3, dtype: ScalarType.Float64).matmul(diag(tensor(new[] { 2.0, 1.0, 0.5 }))).matmul(rotation.T) + mean;
        Assert.Equal(6.25, LatentStatistics.FrechetToStandardNormal(codes), 1);
    }
}
