using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VaeKit.Evaluation;

/// <summary>
/// Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004) of images on the [0, 1] scale, computed with
/// libtorch convolutions. (B, C, H, W) pair → (B) SSIM per image.
/// </summary>
/// <remarks>
/// The paper's settings: an 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range L = 1.
/// Local means, variances and the covariance are Gaussian-weighted; the map covers only "valid" window positions
/// (no padding), is computed per channel and averaged over positions and channels:
/// SSIM = (2·μx·μy + C1)(2·σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (K1·L)², C2 = (K2·L)².
/// Images smaller than the window use a window of their own side (odd, same σ).
/// </remarks>
public static class ImageQuality
{
    /// <summary>Side of the SSIM Gaussian window, pixels.</summary>
    public const int WindowSize = 11;
    /// <summary>σ of the SSIM Gaussian window, pixels.</summary>
    public const double WindowSigma = 1.5;
    private const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;

    /// <summary>(size) normalised 1-D Gaussian; the 2-D window is its outer product.</summary>
    public static Tensor GaussianKernel1D(int size, double sigma, Device? device = null)
    {
        var x = arange(size, dtype: ScalarType.Float64, device: device) - (size - 1) / 2.0;
        var g = (-(x * x) / (2 * sigma * sigma)).exp();
        return g / g.sum();
    }

    /// <summary>(B, C, H, W) pair in [0, 1] → (B) mean SSIM per image.</summary>
    public static Tensor Ssim(Tensor x, Tensor y)
    {
        if (!x.shape.SequenceEqual(y.shape)) throw new ArgumentException($"SSIM needs two batches of one shape, got {string.Join('x', x.shape)} and {string.Join('x', y.shape)}");
        using var scope = NewDisposeScope();
        long channels = x.shape[1];
        int size = (int)Math.Min(WindowSize, Math.Min(x.shape[2], x.shape[3]));
        if (size % 2 == 0) size--;
        var g = GaussianKernel1D(size, WindowSigma, x.device).to_type(ScalarType.Float32);
        var window = g.outer(g).expand(channels, 1, size, size).contiguous();       // (C, 1, k, k), one per channel

        Tensor Blur(Tensor t) => F.conv2d(t, window, groups: channels);             // (B, C, H-k+1, W-k+1)
        var a = x.to_type(ScalarType.Float32);
        var b = y.to_type(ScalarType.Float32);
        var muX = Blur(a);
        var muY = Blur(b);
        var varX = Blur(a * a) - muX * muX;
        var varY = Blur(b * b) - muY * muY;
        var covXY = Blur(a * b) - muX * muY;
        var map = (2 * muX * muY + C1) * (2 * covXY + C2) / ((muX * muX + muY * muY + C1) * (varX + varY + C2));
        return map.flatten(1).mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>(B, C, H, W) pair → (B) mean squared error per pixel (over channels and positions).</summary>
    public static Tensor MsePerImage(Tensor x, Tensor y) => (x - y).square().flatten(1).mean([1]);
}
