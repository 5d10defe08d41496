using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>Placeholder: the network lands in the next commit.</summary>
public sealed class CodeTransformer : CodeModel
{
    /// <param name="config">A validated config of its kind.</param>
    public CodeTransformer(CodeModelConfig config) : base(nameof(CodeTransformer), config) => throw new NotImplementedException("CodeTransformer is not built yet");

    /// <inheritdoc/>
    public override Tensor forward(Tensor indices) => throw new NotImplementedException();
}
