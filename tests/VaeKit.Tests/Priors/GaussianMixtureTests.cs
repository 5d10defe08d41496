using VaeKit.Priors;
using static TorchSharp.torch;

namespace VaeKit.Tests.Priors;

/// <summary>The gmm prior's mixture: EM recovers a known mixture, seeded fits and draws repeat, temperature scales the spread.</summary>
public class GaussianMixtureTests
{
    private static readonly double[][] TrueMeans = [[-4, 0], [4, 0], [0, 5]];
    private static readonly double[] TrueWeights = [0.2, 0.3, 0.5];

    /// <summary>3000 points of a known 3-component 2-D mixture with distinct full covariances.</summary>
    private static Tensor KnownMixture()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(7);
        var parts = new List<Tensor>();
        double[][,] factors = [new double[,] { { 1.0, 0 }, { 0.5, 0.5 } }, new double[,] { { 0.6, 0 }, { -0.3, 1.0 } }, new double[,] { { 0.8, 0 }, { 0, 0.4 } }];
        for (int k = 0; k < 3; k++)
        {
            int count = (int)(3000 * TrueWeights[k]);
            var noise = randn([count, 2], dtype: ScalarType.Float64, generator: generator);
            var factor = tensor(factors[k]);                                   // (2, 2) lower
            parts.Add(noise.matmul(factor.t()) + tensor(TrueMeans[k]).unsqueeze(0));
        }
        var all = cat(parts, 0);
        var order = randperm(all.shape[0], generator: generator);
        return all.index_select(0, order).MoveToOuterDisposeScope();
    }

    [Fact]
    public void Em_recovers_the_means_and_weights_of_a_known_mixture()
    {
        using var x = KnownMixture();
        using var mixture = GaussianMixture.Fit(x, 3, seed: 1);
        var means = mixture.Means.data<double>().ToArray();
        var weights = mixture.Weights.data<double>().ToArray();
        for (int k = 0; k < 3; k++)
        {
            int nearest = Enumerable.Range(0, 3).MinBy(j => Math.Pow(means[2 * j] - TrueMeans[k][0], 2) + Math.Pow(means[2 * j + 1] - TrueMeans[k][1], 2));
            Assert.InRange(means[2 * nearest], TrueMeans[k][0] - 0.15, TrueMeans[k][0] + 0.15);
            Assert.InRange(means[2 * nearest + 1], TrueMeans[k][1] - 0.15, TrueMeans[k][1] + 0.15);
            Assert.InRange(weights[nearest], TrueWeights[k] - 0.03, TrueWeights[k] + 0.03);
        }
        // The fitted mixture explains the data better than one Gaussian does.
        using var single = GaussianMixture.Fit(x, 1, seed: 1);
        Assert.True(mixture.LogLikelihood(x).mean().item<double>() > single.LogLikelihood(x).mean().item<double>() + 0.5);
    }

    [Fact]
    public void The_same_seed_gives_the_same_fit_and_the_same_draws()
    {
        using var x = KnownMixture();
        using var a = GaussianMixture.Fit(x, 4, seed: 3);
        using var b = GaussianMixture.Fit(x, 4, seed: 3);
        Assert.Equal(a.Means.data<double>().ToArray(), b.Means.data<double>().ToArray());
        Assert.Equal(a.Covariances.data<double>().ToArray(), b.Covariances.data<double>().ToArray());
        using var g1 = new Generator(11);
        using var g2 = new Generator(11);
        using var s1 = a.Sample(50, 1.0, g1);
        using var s2 = b.Sample(50, 1.0, g2);
        Assert.Equal(s1.data<double>().ToArray(), s2.data<double>().ToArray());

        // A JSON round trip keeps every bit, so a stored prior samples the same.
        using var c = GaussianMixture.FromJson(a.ToJson());
        using var g3 = new Generator(11);
        using var s3 = c.Sample(50, 1.0, g3);
        Assert.Equal(s1.data<double>().ToArray(), s3.data<double>().ToArray());
    }

    [Fact]
    public void Temperature_scales_the_spread_around_the_component_means()
    {
        using var x = KnownMixture();
        using var mixture = GaussianMixture.Fit(x, 3, seed: 1);
        double Spread(double t)
        {
            using var g = new Generator(5);
            using var s = mixture.Sample(4000, t, g);
            // Distance of each draw to its nearest mean.
            using var d = (s.unsqueeze(1) - mixture.Means.unsqueeze(0)).square().sum(2).min(1).values.sqrt();
            return d.mean().item<double>();
        }
        Assert.Equal(0, Spread(0), 12);
        Assert.InRange(Spread(0.5) / Spread(1.0), 0.4, 0.6);
    }

    [Fact]
    public void Too_few_codes_for_the_components_is_bad_input()
    {
        using var x = randn(5, 2, dtype: ScalarType.Float64);
        var e = Assert.Throws<BadInputException>(() => GaussianMixture.Fit(x, 10, seed: 0));
        Assert.Contains("10-component", e.Message);
    }

    [Fact]
    public void A_cancelled_fit_stops_before_the_next_em_iteration()
    {
        using var x = randn(500, 2, dtype: ScalarType.Float64);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => GaussianMixture.Fit(x, 3, seed: 0, cancellationToken: cancelled.Token));
    }
}
