using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Adversarial;

/// <summary>
/// The shape of a <see cref="PatchDiscriminator"/>: input channels, image side, stride-2 layers, first width and
/// normalisation. <see cref="For"/> sizes it to an image from a run's settings.
/// </summary>
public sealed record DiscriminatorSpec(int Channels, int ImageSize, int Layers, int Width, DiscriminatorNorm Norm)
{
    /// <summary>Widths grow ×2 per layer up to this multiple of the first (pix2pix's cap).</summary>
    public const int MaxWidthMultiple = 8;

    /// <summary>The discriminator a run's settings ask for on images of <paramref name="channels"/> × side
    /// <paramref name="imageSize"/>; layers default to 3 from 32 px up, fewer below, so the patch grid stays at least 1×1.</summary>
    public static DiscriminatorSpec For(TrainConfig train, int channels, int imageSize)
    {
        int layers = train.DiscriminatorLayers ?? Math.Clamp((int)Math.Log2(imageSize) - 2, 1, 3);
        var spec = new DiscriminatorSpec(channels, imageSize, layers, train.DiscriminatorWidth, train.DiscriminatorNorm);
        if (spec.PatchSide < 1)
            throw new BadInputException(
                $"{Settings.Train.DiscriminatorLayers} {layers} halves a {imageSize}-px image to nothing; use at most {MaxLayersFor(imageSize)}.");
        return spec;
    }

    /// <summary>Side of the grid of patch logits: each stride-2 4×4 conv (padding 1) halves the side, each of the last
    /// two stride-1 4×4 convs takes one off.</summary>
    public int PatchSide => SideAfter(ImageSize, Layers);

    /// <summary>Channels of layer <paramref name="i"/> (0-based) of the <see cref="Layers"/> + 1 feature layers.</summary>
    public int WidthOf(int i) => Width * Math.Min(1 << i, MaxWidthMultiple);

    private static int SideAfter(int side, int layers)
    {
        for (int i = 0; i < layers; i++) side /= 2;
        return side - 2;
    }

    private static int MaxLayersFor(int side)
    {
        int layers = 0;
        while (SideAfter(side, layers + 1) >= 1) layers++;
        return layers;
    }
}

/// <summary>
/// A PatchGAN discriminator (Isola et al. 2017, as VQGAN uses it): a stride-2 4×4 conv and LeakyReLU(0.2), then
/// <c>Layers − 1</c> stride-2 4×4 convs with normalisation, one stride-1 4×4 conv with normalisation, and a stride-1
/// 4×4 conv to one logit per patch. (B, C, s, s) in [0, 1] → logits (B, 1, p, p). <see cref="Features"/> also returns the
/// activation after each LeakyReLU (the learned similarity of VAE-GAN compares them). Weights start as in pix2pix:
/// conv N(0, 0.02²), norm scales N(1, 0.02²), biases 0.
/// </summary>
public sealed class PatchDiscriminator : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Sequential> layers;   // feature layers, each ending in LeakyReLU
    private readonly Conv2d output;

    /// <summary>A discriminator of the shape <paramref name="spec"/> gives, freshly initialised (from the global generator).</summary>
    public PatchDiscriminator(DiscriminatorSpec spec) : base(nameof(PatchDiscriminator))
    {
        Spec = spec;
        bool norm = spec.Norm != DiscriminatorNorm.None;
        layers = new ModuleList<Sequential>();
        layers.Add(nn.Sequential(("conv", nn.Conv2d(spec.Channels, spec.WidthOf(0), 4, stride: 2, padding: 1)), ("act", nn.LeakyReLU(0.2))));
        for (int i = 1; i <= spec.Layers; i++)
        {
            int stride = i < spec.Layers ? 2 : 1;
            var conv = nn.Conv2d(spec.WidthOf(i - 1), spec.WidthOf(i), 4, stride: stride, padding: 1, bias: !norm);
            layers.Add(norm
                ? nn.Sequential(("conv", conv), ("norm", Norm(spec.Norm, spec.WidthOf(i))), ("act", nn.LeakyReLU(0.2)))
                : nn.Sequential(("conv", conv), ("act", nn.LeakyReLU(0.2))));
        }
        output = nn.Conv2d(spec.WidthOf(spec.Layers), 1, 4, stride: 1, padding: 1);
        RegisterComponents();
        Initialise();
    }

    /// <summary>The shape this module was built to.</summary>
    public DiscriminatorSpec Spec { get; }

    /// <summary>Images (B, C, s, s) in [0, 1] → patch logits (B, 1, p, p).</summary>
    public override Tensor forward(Tensor x) => Features(x).Logits;

    /// <summary>Patch logits and the activation after each feature layer (<c>Layers + 1</c> of them), in order.</summary>
    public (Tensor Logits, IReadOnlyList<Tensor> Features) Features(Tensor x)
    {
        var features = new List<Tensor>(layers.Count);
        var h = x * 2 - 1;                                 // the [-1, 1] inputs GAN discriminators are built for
        foreach (var layer in layers)
        {
            h = layer.call(h);
            features.Add(h);
        }
        return (output.call(h), features);
    }

    private static nn.Module<Tensor, Tensor> Norm(DiscriminatorNorm kind, int channels)
    {
        // GroupNorm's affine parameters are set in Initialise (TorchSharp 0.107 leaves them uninitialised).
        return kind == DiscriminatorNorm.Batch ? nn.BatchNorm2d(channels) : nn.GroupNorm(Math.Max(1, channels / 32), channels);
    }

    private void Initialise()
    {
        using var noGrad = no_grad();
        foreach (var module in modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    nn.init.normal_(conv.weight, 0, 0.02);
                    if (conv.bias is not null) nn.init.zeros_(conv.bias);
                    break;
                case BatchNorm2d bn:
                    nn.init.normal_(bn.weight, 1, 0.02);
                    nn.init.zeros_(bn.bias);
                    break;
                case GroupNorm gn:
                    nn.init.normal_(gn.weight, 1, 0.02);
                    nn.init.zeros_(gn.bias);
                    break;
            }
        }
    }
}
