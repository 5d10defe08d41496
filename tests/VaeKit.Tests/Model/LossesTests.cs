using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

public class LossesTests
{
    [Fact]
    public void Kl_is_zero_when_the_posterior_is_the_prior()
    {
        using var scope = NewDisposeScope();
        var kl = Losses.KlPerImage(zeros(3, 7), zeros(3, 7));
        Assert.Equal(0.0, kl.abs().max().item<float>(), 7);
    }

    [Fact]
    public void Kl_matches_the_closed_form_per_dimension()
    {
        using var scope = NewDisposeScope();
        // KL(N(m, s²) ‖ N(0, 1)) = ½ (s² + m² − 1 − ln s²)
        double m = 0.7, s2 = 2.5;
        var kl = Losses.KlPerImage(full(1, 4, m), full(1, 4, Math.Log(s2)));
        Assert.Equal(4 * 0.5 * (s2 + m * m - 1 - Math.Log(s2)), kl.item<float>(), 4);
    }

    [Fact]
    public void Kl_agrees_with_a_monte_carlo_estimate()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var mu = tensor(new float[] { 0.3f, -1.2f }).unsqueeze(0);
        var logVar = tensor(new float[] { -0.5f, 0.8f }).unsqueeze(0);
        var z = new GaussianPosterior(mu.expand(200_000, 2), logVar.expand(200_000, 2)).Sample(null);
        // E_q[log q(z) − log p(z)] with both densities in closed form.
        var logQ = -0.5 * ((z - mu).square() / logVar.exp() + logVar).sum(1);
        var logP = -0.5 * z.square().sum(1);
        double monteCarlo = (logQ - logP).mean().item<float>();
        Assert.Equal(Losses.KlPerImage(mu, logVar).item<float>(), monteCarlo, 1);
    }

    [Fact]
    public void Loss_sums_over_pixels_and_averages_over_images()
    {
        using var scope = NewDisposeScope();
        var target = zeros(2, 1, 2, 2);
        var recon = stack([full(1, 2, 2, 0.5f), full(1, 2, 2, 1f)]);   // squared errors: 4·0.25 = 1 and 4·1 = 4
        var mu = zeros(2, 3);
        var logVar = zeros(2, 3);
        mu[1] = full(3, 1f);                                             // KL image 2: 3·½ = 1.5

        var terms = ObjectiveHelper.Compute(ObjectiveHelper.Output(recon, mu, logVar), target, klWeight: 2.0);

        Assert.Equal(2.5, terms[MetricNames.Reconstruction]!.item<float>(), 5);       // (1 + 4) / 2
        Assert.Equal(0.75, terms[MetricNames.Kl]!.item<float>(), 5);                  // (0 + 1.5) / 2
        Assert.Equal(2.5 + 2 * 0.75, terms.Loss.item<float>(), 5);
    }

    [Fact]
    public void Autoencoder_loss_has_no_kl_term()
    {
        using var scope = NewDisposeScope();
        var terms = ObjectiveHelper.Compute(ObjectiveHelper.Output(ones(2, 1, 2, 2), full(2, 3, 5f), null), zeros(2, 1, 2, 2), 10);
        Assert.Equal(4, terms.Loss.item<float>(), 5);
        Assert.Null(terms[MetricNames.Kl]);
    }

    [Fact]
    public void Psnr_follows_from_mse()
    {
        Assert.Equal(20, Losses.Psnr(0.01), 9);
        Assert.Equal(double.PositiveInfinity, Losses.Psnr(0));
    }
}
