using static TorchSharp.torch;

namespace VaeKit;

/// <summary>
/// The pieces of the lab's objective (<see cref="Models.VaeModel.Objective"/> puts them together). Per image:
/// reconstruction = Σ_pixels (x − x̂)², KL = Σ_latent KL(q(z|x) ‖ N(0, I)).
/// </summary>
/// <remarks>
/// Summing over pixels (not averaging) keeps the familiar scale of the ELBO with a unit-variance Gaussian
/// decoder up to constants, so kl_weight = 1 is the plain VAE and kl_weight is comparable across image sizes
/// only per pixel. Closed-form Gaussian KL from Kingma and Welling 2014, Appendix B:
/// KL = −½ Σ (1 + logvar − mu² − exp(logvar)).
/// </remarks>
public static class Losses
{
    /// <summary>(B, C, H, W) pair → (B) sum of squared errors per image.</summary>
    public static Tensor SquaredErrorPerImage(Tensor reconstruction, Tensor target) =>
        (reconstruction - target).square().flatten(1).sum(1);

    /// <summary>mu, logvar (B, z) → (B, z) KL per latent dimension.</summary>
    public static Tensor KlPerDimension(Tensor mu, Tensor logVar) =>
        -0.5 * (1 + logVar - mu.square() - logVar.exp());

    /// <summary>mu, logvar (B, z) → (B) KL per image.</summary>
    public static Tensor KlPerImage(Tensor mu, Tensor logVar) => KlPerDimension(mu, logVar).sum(1);

    /// <summary>PSNR in dB of images on the [0, 1] scale from a per-pixel mean squared error.</summary>
    public static double Psnr(double perPixelMse) => perPixelMse > 0 ? 10 * Math.Log10(1 / perPixelMse) : double.PositiveInfinity;
}
