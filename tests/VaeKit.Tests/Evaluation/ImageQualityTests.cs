using VaeKit.Evaluation;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

public class ImageQualityTests
{
    [Fact]
    public void Ssim_of_identical_images_is_one()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var x = rand(4, 3, 32, 32);
        var ssim = ImageQuality.Ssim(x, x.clone());
        Assert.All(ssim.data<float>().ToArray(), s => Assert.Equal(1.0, s, 5));
    }

    [Fact]
    public void Ssim_of_two_flat_images_is_the_luminance_term()
    {
        using var scope = NewDisposeScope();
        // Flat images have no variance, so SSIM = (2ab + C1) / (a² + b² + C1), C1 = 0.01².
        double a = 0.2, b = 0.6, c1 = 1e-4;
        var ssim = ImageQuality.Ssim(full(1, 1, 28, 28, a), full(1, 1, 28, 28, b)).item<float>();
        Assert.Equal((2 * a * b + c1) / (a * a + b * b + c1), ssim, 4);
    }

    [Fact]
    public void Ssim_falls_as_noise_grows()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var x = rand(2, 3, 32, 32);
        var noise = randn(2, 3, 32, 32);
        double mild = ImageQuality.Ssim((x + 0.02 * noise).clamp(0, 1), x).mean().item<float>();
        double strong = ImageQuality.Ssim((x + 0.3 * noise).clamp(0, 1), x).mean().item<float>();
        Assert.True(1 > mild && mild > strong, $"mild {mild}, strong {strong}");
    }

    [Fact]
    public void The_window_is_a_normalised_gaussian_with_sigma_one_and_a_half()
    {
        using var scope = NewDisposeScope();
        var g = ImageQuality.GaussianKernel1D(ImageQuality.WindowSize, ImageQuality.WindowSigma).data<double>().ToArray();
        Assert.Equal(11, g.Length);
        Assert.Equal(1.0, g.Sum(), 12);
        Assert.Equal(Math.Exp(-25 / (2 * 1.5 * 1.5)), g[0] / g[5], 12);   // the edge, 5 pixels from the centre
    }

    [Theory]
    [InlineData(0.1, 20.0)]
    [InlineData(0.01, 40.0)]
    public void Psnr_follows_from_a_known_mse(double offset, double expectedDb)
    {
        using var scope = NewDisposeScope();
        var x = full(2, 3, 8, 8, 0.5f);
        var mse = ImageQuality.MsePerImage(x + offset, x).mean().item<float>();
        Assert.Equal(offset * offset, mse, 6);
        Assert.Equal(expectedDb, Losses.Psnr(offset * offset), 9);
    }
}
