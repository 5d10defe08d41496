using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// What a forward pass returns: the reconstruction (B, C, s, s) in [0, 1], the posterior the encoder produced, and the
/// code that was decoded (B, z): a posterior sample in training mode, the mode in evaluation mode.
/// </summary>
public sealed record ModelOutput(Tensor Reconstruction, Posterior Posterior, Tensor Z)
{
    /// <summary>The posterior's mode, (B, z): the code a user reads off an image.</summary>
    public Tensor Code => Posterior.Mode;
}
