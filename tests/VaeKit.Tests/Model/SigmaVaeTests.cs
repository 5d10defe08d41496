using System.Text.Json.Nodes;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

/// <summary>σ-VAE's objective (<see cref="SigmaVae"/>) on hand-built tensors: the optimal σ, the Gaussian NLL, the
/// learned σ's gradient and the running σ² that likelihood evaluation uses.</summary>
public class SigmaVaeTests
{
    private static readonly double Floor = Math.Exp(SigmaVae.MinLogSigma);   // the soft clamp adds e⁻⁶ to σ

    private static ModelConfig Config(string? sigma) => new ModelConfig
    {
        Kind = ModelKinds.SigmaVae, Widths = [4], ImageSize = 2, Latent = 2, InChannels = 1,
        Options = sigma is null ? null : new JsonObject { ["sigma"] = sigma },
    }.Validate();

    private static SigmaVae Build(string? sigma) => (SigmaVae)ModelFactory.Create(Config(sigma));

    /// <summary>x and x̂ (2, 1, 2, 2) with known squared errors; mu, logvar (2, 2).</summary>
    private static (Tensor X, Tensor Reconstruction, ModelOutput Output) Batch()
    {
        var x = tensor(new float[] { 0.1f, 0.5f, 0.9f, 0.3f, 0.0f, 1.0f, 0.4f, 0.6f }).view(2, 1, 2, 2);
        var reconstruction = tensor(new float[] { 0.2f, 0.3f, 0.9f, 0.7f, 0.1f, 0.6f, 0.4f, 0.9f }).view(2, 1, 2, 2);
        var mu = tensor(new float[] { 0.5f, -1.0f, 0.0f, 2.0f }).view(2, 2);
        var logVar = tensor(new float[] { -0.5f, 0.2f, 0.0f, -1.0f }).view(2, 2);
        return (x, reconstruction, new ModelOutput(reconstruction, new GaussianPosterior(mu, logVar), mu));
    }

    private static double[] Flat(Tensor t) => t.to(ScalarType.Float64).flatten().data<double>().ToArray();

    private static double Term(Objective objective, string name) => objective[name]!.to(ScalarType.Float64).item<double>();

    /// <summary>Σ_pixels [(x − x̂)²/(2σ²) + log σ + ½ log 2π] of image i, in doubles.</summary>
    private static double HandNll(double[] x, double[] xHat, int image, double sigma)
    {
        double sum = 0;
        for (int p = image * 4; p < image * 4 + 4; p++)
            sum += (x[p] - xHat[p]) * (x[p] - xHat[p]) / (2 * sigma * sigma) + Math.Log(sigma) + 0.5 * Math.Log(2 * Math.PI);
        return sum;
    }

    /// <summary>KL(N(mu, e^logvar) ‖ N(0, I)) of image i, in doubles.</summary>
    private static double HandKl(Tensor mu, Tensor logVar, int image)
    {
        double[] m = Flat(mu), v = Flat(logVar);
        double kl = 0;
        for (int j = image * 2; j < image * 2 + 2; j++) kl += 0.5 * (Math.Exp(v[j]) + m[j] * m[j] - 1 - v[j]);
        return kl;
    }

    [Fact]
    public void The_optimal_sigma_is_the_batch_rmse_softly_floored()
    {
        using var scope = NewDisposeScope();
        using var model = Build("optimal");
        var (x, reconstruction, output) = Batch();
        double[] a = Flat(x), b = Flat(reconstruction);
        double rmse = Math.Sqrt(a.Zip(b, (p, q) => (p - q) * (p - q)).Average());

        var objective = model.Objective(output, x, new LossContext(1.0, Training: false));
        // m + softplus(log σ − m) = log(σ + e^m): the paper's soft clamp adds e⁻⁶ ≈ 0.0025 to σ.
        Assert.Equal(rmse + Floor, Term(objective, SigmaVae.SigmaTerm), 5);
        Assert.Equal(rmse * rmse, Term(objective, MetricNames.Mse), 6);

        // A perfect batch cannot push σ (and the loss) to zero (−∞): σ stops at the floor.
        var perfect = model.Objective(new ModelOutput(x, output.Posterior, output.Z), x, new LossContext(1.0, Training: false));
        Assert.Equal(Floor, Term(perfect, SigmaVae.SigmaTerm), 6);
        Assert.True(float.IsFinite(perfect.Loss.item<float>()));
    }

    [Theory]
    [InlineData("optimal", 1.0)]
    [InlineData("learned", 1.0)]
    [InlineData("learned", 0.25)]
    public void The_loss_is_the_gaussian_nll_plus_the_weighted_kl(string sigma, double klWeight)
    {
        using var scope = NewDisposeScope();
        using var model = Build(sigma);
        var (x, reconstruction, output) = Batch();
        double[] a = Flat(x), b = Flat(reconstruction);
        var objective = model.Objective(output, x, new LossContext(klWeight, Training: false));
        double s = Term(objective, SigmaVae.SigmaTerm);
        if (sigma == "learned") Assert.Equal(1 + Floor, s, 6);        // log σ starts at 0

        var gaussian = (GaussianPosterior)output.Posterior;
        double nll0 = HandNll(a, b, 0, s), nll1 = HandNll(a, b, 1, s);
        double kl0 = HandKl(gaussian.Mu, gaussian.LogVar, 0), kl1 = HandKl(gaussian.Mu, gaussian.LogVar, 1);
        Assert.Equal((nll0 + nll1) / 2, Term(objective, MetricNames.Reconstruction), 4);
        Assert.Equal((kl0 + kl1) / 2, Term(objective, MetricNames.Kl), 5);
        Assert.Equal((nll0 + klWeight * kl0 + nll1 + klWeight * kl1) / 2, objective.Loss.item<float>(), 4);

        // Likelihood evaluation's density at the same σ is the same number: −log p(x|z) per image.
        var logPx = Flat(model.LogLikelihood(reconstruction, x, s * s));
        Assert.Equal(nll0, -logPx[0], 4);
        Assert.Equal(nll1, -logPx[1], 4);
    }

    [Fact]
    public void The_learned_log_sigma_gets_the_gradient_of_the_nll()
    {
        using var scope = NewDisposeScope();
        using var model = Build("learned");
        var logSigma = model.named_parameters().Single(p => p.name == "decoder_sigma.log_sigma").parameter;
        var (x, reconstruction, output) = Batch();
        double[] a = Flat(x), b = Flat(reconstruction);
        model.Objective(output, x, new LossContext(1.0, Training: true)).Loss.backward();

        // d/dt of mean_i [SSE_i/(2σ²) + D log σ] with log σ = c(t), c(t) = m + softplus(t − m), c'(t) = sigmoid(t − m):
        // mean_i [−SSE_i/σ² + D] · c'(0).
        double s = 1 + Floor;
        double sseMean = a.Zip(b, (p, q) => (p - q) * (p - q)).Sum() / 2;
        double slope = 1 / (1 + Math.Exp(SigmaVae.MinLogSigma));
        Assert.NotNull(logSigma.grad);
        Assert.Equal((-sseMean / (s * s) + 4) * slope, logSigma.grad!.item<float>(), 4);
    }

    [Fact]
    public void Optimal_sigma_adds_no_parameter_and_keeps_the_vae_weight_names()
    {
        using var optimal = Build("optimal");
        using var learned = Build("learned");
        using var vae = ModelFactory.Create(Config(null) with { Kind = ModelKinds.Vae, Options = null });
        var names = vae.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(names, optimal.named_parameters().Select(p => p.name).ToList());
        Assert.Equal(vae.ParameterCount, optimal.ParameterCount);
        Assert.Equal(names.Append("decoder_sigma.log_sigma").Order(), learned.named_parameters().Select(p => p.name).Order());
        Assert.Equal(vae.ParameterCount + 1, learned.ParameterCount);
        Assert.Contains("mse_ema", optimal.named_buffers().Select(b => b.name));
    }

    [Fact]
    public void Evaluation_uses_a_running_mean_of_the_training_batches_optimal_variance()
    {
        using var scope = NewDisposeScope();
        using var model = Build("optimal");
        Assert.Null(model.DecoderVariance);               // never trained: the evaluator's σ² applies
        var (x, _, output) = Batch();
        var second = new ModelOutput(x * 0.5, output.Posterior, output.Z);
        double mse1 = Term(model.Objective(output, x, new LossContext(1.0, Training: true)), MetricNames.Mse);
        double mse2 = Term(model.Objective(second, x, new LossContext(1.0, Training: true)), MetricNames.Mse);
        model.Objective(second, x, new LossContext(1.0, Training: false));   // validation passes leave it alone

        double d = SigmaVae.EmaDecay;
        double running = (d * (1 - d) * mse1 + (1 - d) * mse2) / (d * (1 - d) + (1 - d));   // bias-corrected EMA
        double sigma = Math.Sqrt(running) + Floor;
        Assert.Equal(sigma * sigma, model.DecoderVariance!.Value, 6);

        using var learned = Build("learned");
        Assert.Equal((1 + Floor) * (1 + Floor), learned.DecoderVariance!.Value, 6);
    }

    [Theory]
    [InlineData("sigma", "\"fixed\"", "optimal or learned")]
    [InlineData("sigma", "2", "optimal or learned")]
    [InlineData("sigmaa", "\"learned\"", "not a sigma-vae option")]
    public void Bad_options_are_refused_by_name(string key, string json, string hint)
    {
        var config = new ModelConfig { Kind = ModelKinds.SigmaVae, Options = new JsonObject { [key] = JsonNode.Parse(json) } };
        var e = Assert.Throws<BadInputException>(() => config.Validate());
        Assert.Contains(hint, e.Message);
        Assert.Contains("model.options." + key, e.Message);
    }

    [Fact]
    public void The_default_option_is_written_into_the_config()
    {
        var config = Config(null);
        Assert.Equal("optimal", config.Options!["sigma"]!.GetValue<string>());
        using var model = Build(null);
        Assert.Equal(SigmaMode.Optimal, model.Mode);
    }
}
