using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Layers;

/// <summary>
/// Latent → image, the mirror of <see cref="Encoder"/>. (B, z) → (B, C_in, s, s), values in (0, 1).
/// Linear z → c[L-1]·side², reshape (or, for a code grid, a 1×1 conv d → c[L-1] at each of the side² positions); per stage from the last width to the first: n residual blocks, then (except
/// after the first stage) a stride-2 4×4 transposed conv c[i] → c[i-1]; then Norm → SiLU → conv_out and a
/// sigmoid, the parameter-free map onto the data range [0, 1].
/// </summary>
public sealed class Decoder : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "project")] private readonly nn.Module<Tensor, Tensor> _project;   // Linear, or a 1×1 Conv2d for a grid
    [ComponentName(Name = "stages")] private readonly ModuleList<DecoderStage> _stages;
    [ComponentName(Name = "norm_out")] private readonly nn.Module<Tensor, Tensor> _normOut;
    [ComponentName(Name = "conv_out")] private readonly Conv2d _convOut;
    private readonly long[] _bottleneckShape;
    private readonly long[]? _gridShape;   // (B, side, side, d) of a grid code, null for a flat one

    /// <summary>Builds the decoder for <paramref name="config"/>'s widths, blocks, latent size and image size.</summary>
    /// <param name="config">The model's shape.</param>
    /// <param name="gridCodeDim">d when the code is a (side × side) grid of d-vectors, flattened in raster order with
    /// the d numbers of a position together (z = side²·d; the VQ-VAE's layout=grid); null for a flat code.</param>
    public Decoder(ModelConfig config, int? gridCodeDim = null) : base(nameof(Decoder))
    {
        var c = config.Widths;
        if (gridCodeDim is int d)
        {
            _project = nn.Conv2d(d, c[^1], kernel_size: 1);
            _gridShape = [-1, config.BottleneckSide, config.BottleneckSide, d];
        }
        else
            _project = nn.Linear(config.Latent, config.FlatFeatures);
        _stages = new ModuleList<DecoderStage>();
        for (int i = c.Count - 1; i >= 0; i--)
            _stages.Add(new DecoderStage(config, c[i], i > 0 ? c[i - 1] : null));
        _normOut = Norm.Create(config, c[0]);
        _convOut = nn.Conv2d(c[0], config.InChannels, kernel_size: 3, padding: 1);
        _bottleneckShape = [-1, c[^1], config.BottleneckSide, config.BottleneckSide];
        RegisterComponents();
    }

    /// <summary>(B, z) codes → (B, C_in, s, s) images in (0, 1).</summary>
    public override Tensor forward(Tensor z)
    {
        Tensor h;
        if (_gridShape is null)
        {
            h = _project.call(z);
            h = h.Then(h.view(_bottleneckShape), z);      // (B, c[L-1], side, side)
        }
        else
        {
            h = z.reshape(_gridShape).permute(0, 3, 1, 2);   // (B, d, side, side)
            h = h.Then(_project.call(h), z);              // (B, c[L-1], side, side)
        }
        foreach (var stage in _stages)
            h = h.Then(stage.call(h), z);                 // doubles H, W between stages
        h = h.Then(_normOut.call(h), z);
        h = h.Then(nn.functional.silu(h), z);
        h = h.Then(_convOut.call(h), z);                  // (B, C_in, s, s) logits
        return h.Then(h.sigmoid(), z);
    }
}

/// <summary>n residual blocks at one width, then an optional 4×4 stride-2 transposed conv to the previous width.</summary>
public sealed class DecoderStage : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "blocks")] private readonly ModuleList<ResidualBlock> _blocks;
    [ComponentName(Name = "upsample")] private readonly ConvTranspose2d? _upsample;

    /// <summary><paramref name="width"/> channels in; <paramref name="previousWidth"/> null for the last stage (no upsampling).</summary>
    public DecoderStage(ModelConfig config, int width, int? previousWidth) : base(nameof(DecoderStage))
    {
        _blocks = new ModuleList<ResidualBlock>();
        for (int b = 0; b < config.Blocks; b++)
            _blocks.Add(new ResidualBlock(config, width));
        if (previousWidth is int prev)
            _upsample = nn.ConvTranspose2d(width, prev, kernel_size: 4, stride: 2, padding: 1);
        RegisterComponents();
    }

    /// <summary>(B, width, H, W) → (B, previousWidth, 2H, 2W), or (B, width, H, W) without upsampling.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = x;
        foreach (var block in _blocks)
            h = h.Then(block.call(h), x);                       // (B, c_i, H, W)
        return _upsample is null ? h : h.Then(_upsample.call(h), x);   // (B, c_{i-1}, 2H, 2W)
    }
}
