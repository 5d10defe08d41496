using static TorchSharp.torch;

namespace VaeKit;

/// <summary>Batch means of the loss and its two parts; all scalars (0-dim tensors).</summary>
public sealed record LossTerms(Tensor Loss, Tensor Reconstruction, Tensor Kl);

/// <summary>
/// The lab's objective. Per image: reconstruction = Σ_pixels (x − x̂)², KL = Σ_latent KL(q(z|x) ‖ N(0, I));
/// loss = mean over the batch of (reconstruction + kl_weight · KL). The AE has no KL term.
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

    /// <param name="freeBits">Free bits (Kingma et al. 2016, §C.8): the KL in the loss is Σ_latent max(F, batch-mean KL
    /// of that dimension); 0 = the plain KL. <see cref="LossTerms.Kl"/> always reports the true KL.</param>
    public static LossTerms Compute(ModelOutput output, Tensor target, double klWeight, double freeBits = 0)
    {
        var reconstruction = SquaredErrorPerImage(output.Reconstruction, target);    // (B)
        if (output.LogVar is null)
        {
            var loss = reconstruction.mean();
            return new LossTerms(loss, loss, zeros_like(loss));
        }
        var klPerDim = KlPerDimension(output.Mu, output.LogVar);                      // (B, z)
        var kl = klPerDim.sum(1);                                                      // (B)
        if (freeBits > 0)
        {
            var floored = klPerDim.mean([0]).clamp_min(freeBits).sum();                // Σ_z max(F, mean_B KL_z)
            return new LossTerms(reconstruction.mean() + klWeight * floored, reconstruction.mean(), kl.mean());
        }
        return new LossTerms((reconstruction + klWeight * kl).mean(), reconstruction.mean(), kl.mean());
    }

    /// <summary>PSNR in dB of images on the [0, 1] scale from a per-pixel mean squared error.</summary>
    public static double Psnr(double perPixelMse) => perPixelMse > 0 ? 10 * Math.Log10(1 / perPixelMse) : double.PositiveInfinity;
}
