using TorchSharp;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Layers;

/// <summary>Builds the normalisation layer the config asks for.</summary>
internal static class Norm
{
    public static nn.Module<Tensor, Tensor> Create(ModelConfig config, int channels)
    {
        if (config.Norm == NormKind.Batch)
            return nn.BatchNorm2d(channels);

        var norm = nn.GroupNorm(config.Groups, channels);
        // TorchSharp 0.107 allocates GroupNorm's affine parameters with empty() and never initialises them
        // (garbage and NaN seen on the first forward); PyTorch starts them at 1 and 0.
        using (no_grad())
        {
            nn.init.ones_(norm.weight);
            nn.init.zeros_(norm.bias);
        }
        return norm;
    }
}
