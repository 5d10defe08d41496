using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>Placeholder: the network lands in the next commit.</summary>
public sealed class GatedPixelCnn : CodeModel
{
    /// <param name="config">A validated config of its kind.</param>
    public GatedPixelCnn(CodeModelConfig config) : base(nameof(GatedPixelCnn), config) => throw new NotImplementedException("GatedPixelCnn is not built yet");

    /// <inheritdoc/>
    public override Tensor forward(Tensor indices) => throw new NotImplementedException();
}
