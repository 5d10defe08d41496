using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Evaluation;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

public class EvaluatorTests
{
    private static DecodedImages Images(int n)
    {
        manual_seed(7);
        return new DecodedImages(randint(0, 256, [n, 16, 16, 3]).to_type(ScalarType.Byte));
    }

    [Fact]
    public void A_vae_report_is_consistent_with_itself()
    {
        using var images = Images(20);
        manual_seed(8);
        using var model = new AutoEncoder(new ModelConfig { Widths = [4, 8], ImageSize = 16, Latent = 5 });
        var report = Evaluator.Evaluate(model, images, CPU, new EvalOptions { ImportanceSamples = 32, BatchSize = 6 });

        Assert.Equal(20, report.Images);
        Assert.Equal(16 * 16 * 3, report.Dimensions);
        Assert.Equal(Losses.Psnr(report.Mse), report.Psnr, 9);
        Assert.InRange(report.Ssim, -1, 1);
        Assert.Equal(report.Kl!.Value, report.KlPerDimension!.Sum(), 6);
        // The importance-weighted bound is tighter than the ELBO (Burda et al. 2016): −NLL bound ≥ ELBO.
        Assert.True(-report.NllNats!.Value >= report.ElboNats!.Value, $"nll {report.NllNats}, elbo {report.ElboNats}");
        Assert.Equal(report.NllNats!.Value / (report.Dimensions * Math.Log(2)), report.NllBitsPerDim!.Value, 9);
        Assert.True(report.FrechetAggregate is not null);

        // The same seed gives the same numbers; batching does not change them.
        var again = Evaluator.Evaluate(model, images, CPU, new EvalOptions { ImportanceSamples = 32, BatchSize = 20 });
        Assert.Equal(report.Mse, again.Mse, 7);
        Assert.Equal(report.Ssim, again.Ssim, 6);
    }

    [Fact]
    public void An_ae_report_has_no_likelihood_but_a_frechet_distance()
    {
        using var images = Images(12);
        manual_seed(9);
        using var model = new AutoEncoder(new ModelConfig { Kind = ModelKinds.Ae, Widths = [4, 8], ImageSize = 16, Latent = 5 });
        var report = Evaluator.Evaluate(model, images, CPU, new EvalOptions());
        Assert.Equal("ae", report.Model);
        Assert.Null(report.Kl);
        Assert.Null(report.NllNats);
        Assert.Null(report.FrechetAggregate);
        Assert.True(double.IsFinite(report.Frechet) && report.Frechet >= 0);
    }

    [Fact]
    public void Slerp_keeps_the_norm_between_codes_of_equal_norm_and_hits_both_ends()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 3, 0, 0, 0 }).view(1, 1, 4);
        var b = tensor(new float[] { 0, 0, 3, 0 }).view(1, 1, 4);
        var t = linspace(0, 1, 5).view(1, 5, 1);
        var path = TrainedModel.Slerp(a, b, t);                                  // (1, 5, 4)
        Assert.All(linalg.vector_norm(path, dims: [2]).data<float>().ToArray(), n => Assert.Equal(3f, n, 4));
        Assert.True(path[0, 0].allclose(a[0, 0], atol: 1e-5));
        Assert.True(path[0, 4].allclose(b[0, 0], atol: 1e-5));
        // parallel codes fall back to the straight line instead of dividing by sin 0
        var straight = TrainedModel.Slerp(a, 2 * a, t);
        Assert.True(straight[0, 2].allclose(1.5 * a[0, 0], atol: 1e-5));
    }
}
