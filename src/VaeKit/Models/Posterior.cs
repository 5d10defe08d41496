using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// q(z|x) for a batch, as an encoder returns it: a flat code per image, (B, z). Training decodes <see cref="Sample"/>,
/// evaluation decodes <see cref="Mode"/>; <see cref="Regularisers"/> are the posterior's own loss terms (the KL to the
/// prior for a Gaussian, commitment for a vector quantiser), each per image so the objective can weight and average
/// them.
/// </summary>
public abstract class Posterior
{
    /// <summary>The most likely code (the mean of a Gaussian, the code itself for an AE), (B, z).</summary>
    public abstract Tensor Mode { get; }

    /// <summary>A draw from q(z|x), (B, z); <paramref name="noise"/> null = libtorch's generator of the code's device.</summary>
    public abstract Tensor Sample(Generator? noise);

    /// <summary>Named regulariser terms, each (B) per image; empty for a deterministic code.</summary>
    public virtual IReadOnlyList<(string Name, Tensor PerImage)> Regularisers() => [];

    /// <summary>The same posterior in fp32 (a bf16 forward pass hands its posterior to an fp32 objective).</summary>
    public abstract Posterior ToFloat32();
}

/// <summary>A deterministic code: the AE's. Mode and sample are the code; there is no regulariser.</summary>
public sealed class PointPosterior(Tensor code) : Posterior
{
    /// <inheritdoc/>
    public override Tensor Mode { get; } = code;
    /// <inheritdoc/>
    public override Tensor Sample(Generator? noise) => Mode;
    /// <inheritdoc/>
    public override Posterior ToFloat32() => new PointPosterior(Mode.to(ScalarType.Float32));
}

/// <summary>
/// A diagonal Gaussian N(mu, exp(logvar)) against the prior N(0, I): sampling by reparameterisation
/// (z = mu + ε·exp(½·logvar), Kingma and Welling 2014, §2.4) and the closed-form KL (their Appendix B).
/// </summary>
public sealed class GaussianPosterior(Tensor mu, Tensor logVar) : Posterior
{
    /// <summary>(B, z)</summary>
    public Tensor Mu { get; } = mu;

    /// <summary>(B, z)</summary>
    public Tensor LogVar { get; } = logVar;

    /// <inheritdoc/>
    public override Tensor Mode => Mu;

    /// <inheritdoc/>
    public override Tensor Sample(Generator? noise) =>
        Mu + randn(Mu.shape, dtype: Mu.dtype, device: Mu.device, generator: noise) * (0.5 * LogVar).exp();

    /// <summary>KL(q ‖ N(0, I)) per latent dimension, (B, z): −½ (1 + logvar − mu² − exp(logvar)).</summary>
    public Tensor KlPerDimension() => Losses.KlPerDimension(Mu, LogVar);

    /// <summary>KL per image, (B).</summary>
    public Tensor Kl() => KlPerDimension().sum(1);

    /// <inheritdoc/>
    public override IReadOnlyList<(string Name, Tensor PerImage)> Regularisers() => [(MetricNames.Kl, Kl())];

    /// <inheritdoc/>
    public override Posterior ToFloat32() => new GaussianPosterior(Mu.to(ScalarType.Float32), LogVar.to(ScalarType.Float32));
}
