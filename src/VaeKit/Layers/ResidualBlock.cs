using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Layers;

/// <summary>
/// Pre-activation residual block at constant width: (Norm → SiLU → Conv3×3) twice, added to the identity.
/// (B, C, H, W) → (B, C, H, W).
/// </summary>
public sealed class ResidualBlock : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "norm1")] private readonly nn.Module<Tensor, Tensor> _norm1;
    [ComponentName(Name = "conv1")] private readonly Conv2d _conv1;
    [ComponentName(Name = "norm2")] private readonly nn.Module<Tensor, Tensor> _norm2;
    [ComponentName(Name = "conv2")] private readonly Conv2d _conv2;

    /// <summary>A block of <paramref name="channels"/> channels, normalised as <paramref name="config"/> says.</summary>
    public ResidualBlock(ModelConfig config, int channels) : base(nameof(ResidualBlock))
    {
        _norm1 = Norm.Create(config, channels);
        _conv1 = nn.Conv2d(channels, channels, kernel_size: 3, padding: 1);
        _norm2 = Norm.Create(config, channels);
        _conv2 = nn.Conv2d(channels, channels, kernel_size: 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>(B, C, H, W) → (B, C, H, W).</summary>
    public override Tensor forward(Tensor x)
    {
        // Each intermediate is released once used (Norm.Then): see there why.
        var h = _norm1.call(x);
        h = h.Then(nn.functional.silu(h), x);
        h = h.Then(_conv1.call(h), x);                  // (B, C, H, W)
        h = h.Then(_norm2.call(h), x);
        h = h.Then(nn.functional.silu(h), x);
        h = h.Then(_conv2.call(h), x);                  // (B, C, H, W)
        return h.Then(x + h, x);
    }
}
