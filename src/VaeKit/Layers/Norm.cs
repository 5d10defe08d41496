using TorchSharp;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Layers;

/// <summary>Builds the normalisation layer the config asks for.</summary>
internal static class Norm
{
    /// <summary>
    /// Issue 13: releases an intermediate activation as soon as the next layer has used it (unless it is
    /// <paramref name="keep"/>, the caller's input). Autograd holds its own references to what backward needs, so
    /// this is safe in training; in inference it lets libtorch reuse the previous layer's memory instead of
    /// allocating (and page-faulting) fresh memory for every layer until the caller's dispose scope ends.
    /// </summary>
    public static Tensor Then(this Tensor used, Tensor result, Tensor keep)
    {
        if (!ReferenceEquals(used, keep) && !ReferenceEquals(used, result)) used.Dispose();
        return result;
    }

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
