using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Layers;

/// <summary>
/// Image → flat features. (B, C_in, s, s) → (B, c[L-1] · side²) with side = s / 2^(L-1).
/// conv_in; per stage i: n residual blocks at c[i], then (except after the last stage) a stride-2 4×4 conv
/// c[i] → c[i+1]; then Norm → SiLU → flatten. The latent projection lives in <see cref="Models.AutoEncoder"/>.
/// </summary>
public sealed class Encoder : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "conv_in")] private readonly Conv2d _convIn;
    [ComponentName(Name = "stages")] private readonly ModuleList<EncoderStage> _stages;
    [ComponentName(Name = "norm_out")] private readonly nn.Module<Tensor, Tensor> _normOut;

    /// <summary>Builds the encoder for <paramref name="config"/>'s input channels, widths and blocks.</summary>
    public Encoder(ModelConfig config) : base(nameof(Encoder))
    {
        var c = config.Widths;
        _convIn = nn.Conv2d(config.InChannels, c[0], kernel_size: 3, padding: 1);
        _stages = new ModuleList<EncoderStage>();
        for (int i = 0; i < c.Count; i++)
            _stages.Add(new EncoderStage(config, c[i], i + 1 < c.Count ? c[i + 1] : null));
        _normOut = Norm.Create(config, c[^1]);
        RegisterComponents();
    }

    /// <summary>(B, C_in, s, s) images → (B, c[L-1]·side²) flat features.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = _convIn.call(x);                          // (B, c0, s, s)
        foreach (var stage in _stages)
            h = h.Then(stage.call(h), x);                 // halves H, W between stages
        h = h.Then(_normOut.call(h), x);
        h = h.Then(nn.functional.silu(h), x);             // (B, c[L-1], side, side)
        return h.Then(h.flatten(1), x);                   // (B, c[L-1]·side²)
    }
}

/// <summary>n residual blocks at one width, then an optional 4×4 stride-2 compression conv to the next width.</summary>
public sealed class EncoderStage : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "blocks")] private readonly ModuleList<ResidualBlock> _blocks;
    [ComponentName(Name = "downsample")] private readonly Conv2d? _downsample;

    /// <summary><paramref name="width"/> channels in; <paramref name="nextWidth"/> null for the last stage (no downsampling).</summary>
    public EncoderStage(ModelConfig config, int width, int? nextWidth) : base(nameof(EncoderStage))
    {
        _blocks = new ModuleList<ResidualBlock>();
        for (int b = 0; b < config.Blocks; b++)
            _blocks.Add(new ResidualBlock(config, width));
        if (nextWidth is int next)
            _downsample = nn.Conv2d(width, next, kernel_size: 4, stride: 2, padding: 1);
        RegisterComponents();
    }

    /// <summary>(B, width, H, W) → (B, nextWidth, H/2, W/2), or (B, width, H, W) without downsampling.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = x;
        foreach (var block in _blocks)
            h = h.Then(block.call(h), x);                           // (B, c_i, H, W)
        return _downsample is null ? h : h.Then(_downsample.call(h), x);   // (B, c_{i+1}, H/2, W/2)
    }
}
