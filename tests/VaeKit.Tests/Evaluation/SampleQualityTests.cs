using VaeKit.Evaluation;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

public class SampleQualityTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [FactRequiring(Package.PythonScipy)]
    public void Kid_precision_and_recall_agree_with_numpy_and_scipy_on_the_same_features()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        manual_seed(21);
        var mixing = randn(16, 16, dtype: ScalarType.Float64) / 4 + eye(16, dtype: ScalarType.Float64);
        var real = randn(600, 16, dtype: ScalarType.Float64).matmul(mixing);                        // (600, 16)
        var generated = (0.8 * randn(600, 16, dtype: ScalarType.Float64) + 0.3).matmul(mixing).to_type(ScalarType.Float32);
        ScipyReference.WriteNpy(dir["real.npy"], real);
        ScipyReference.WriteNpy(dir["generated.npy"], generated);

        // One subset of the whole set: a permutation of all of it, so the estimate is the exact unbiased MMD².
        var kid = KernelDistance.Between(generated, real, subsets: 1, maxSubsetSize: 600);
        var pr = PrecisionRecall.Between(real, generated, k: 3);
        var reference = ScipyReference.Numbers("scipy_quality.py", dir["real.npy"], dir["generated.npy"], "3");
        log.WriteLine($"KID {kid.Kid:R} vs {reference[0]:R}; precision {pr.Precision} vs {reference[1]}; recall {pr.Recall} vs {reference[2]}");

        Assert.Equal(600, kid.SubsetSize);
        Assert.True(Math.Abs(kid.Kid - reference[0]) <= 1e-9 * Math.Abs(reference[0]), $"KID {kid.Kid:R} against numpy's {reference[0]:R}");
        Assert.True(reference[0] > 0.01, $"the two sets differ, so the MMD² is clearly positive: {reference[0]}");
        // A ball's boundary decides a point in or out; round-off may move at most a point or two across it.
        Assert.True(Math.Abs(pr.Precision - reference[1]) <= 2.0 / 600, $"precision {pr.Precision} against scipy's {reference[1]}");
        Assert.True(Math.Abs(pr.Recall - reference[2]) <= 2.0 / 600, $"recall {pr.Recall} against scipy's {reference[2]}");
        Assert.InRange(reference[1], 0.02, 0.98);   // neither trivially all nor none: the check has teeth
        Assert.InRange(reference[2], 0.02, 0.98);
    }

    [Fact]
    public void Kid_is_near_zero_between_two_draws_of_one_distribution_and_clearly_positive_between_two()
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        var a = randn(2000, 8, dtype: ScalarType.Float64);
        var b = randn(2000, 8, dtype: ScalarType.Float64);
        var shifted = randn(2000, 8, dtype: ScalarType.Float64) + 0.5;

        var same = KernelDistance.Between(a, b, subsets: 50, maxSubsetSize: 500, seed: 1);
        var apart = KernelDistance.Between(a, shifted, subsets: 50, maxSubsetSize: 500, seed: 1);
        log.WriteLine($"same {same.Kid:E3} ± {same.Std:E3}; shifted {apart.Kid:E3} ± {apart.Std:E3}");

        Assert.Equal(500, same.SubsetSize);
        Assert.Equal(50, same.Subsets);
        Assert.True(Math.Abs(same.Kid) < 3 * same.Std / Math.Sqrt(same.Subsets) + 1e-3, $"unbiased: {same.Kid} ± {same.Std}");
        Assert.True(apart.Kid > 10 * apart.Std / Math.Sqrt(apart.Subsets) && apart.Kid > 20 * Math.Abs(same.Kid),
                    $"shifted {apart.Kid} ± {apart.Std} against same {same.Kid}");
        // The same seed draws the same subsets.
        Assert.Equal(same, KernelDistance.Between(a, b, subsets: 50, maxSubsetSize: 500, seed: 1));
    }

    [Fact]
    public void Precision_and_recall_tell_a_collapsed_generator_from_a_spread_out_one()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        var real = randn(1000, 8, dtype: ScalarType.Float64);

        var itself = PrecisionRecall.Between(real, real);
        Assert.Equal((1.0, 1.0), (itself.Precision, itself.Recall));

        // Mode collapse: every sample is one of five real images, barely perturbed. All look real; little is covered.
        var collapsed = real.narrow(0, 0, 5).repeat(200, 1) + 1e-3 * randn(1000, 8, dtype: ScalarType.Float64);
        var c = PrecisionRecall.Between(real, collapsed);
        // Over-dispersed: the samples spread three times wider than the data. Much is covered; few look real.
        var wide = PrecisionRecall.Between(real, 3 * randn(1000, 8, dtype: ScalarType.Float64));
        log.WriteLine($"collapsed P {c.Precision} R {c.Recall}; wide P {wide.Precision} R {wide.Recall}");

        Assert.True(c.Precision > 0.95 && c.Recall < 0.05, $"collapsed: precision {c.Precision}, recall {c.Recall}");
        Assert.True(wide.Precision < 0.5 && wide.Recall > 0.9, $"wide: precision {wide.Precision}, recall {wide.Recall}");
        Assert.Equal(PrecisionRecall.Neighbours, c.Neighbours);
    }

    [Fact]
    public void Mismatched_or_too_small_feature_sets_are_refused()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => KernelDistance.Between(randn(10, 4), randn(10, 5)));
        Assert.Throws<ArgumentException>(() => KernelDistance.Between(randn(1, 4), randn(10, 4)));
        Assert.Throws<ArgumentException>(() => PrecisionRecall.Between(randn(3, 4), randn(10, 4)));   // k = 3 needs 4 points
        Assert.Throws<ArgumentException>(() => PrecisionRecall.Between(randn(10), randn(10, 4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelDistance.Between(randn(10, 4), randn(10, 4), subsets: 0));
    }
}
