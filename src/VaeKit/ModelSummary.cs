using TorchSharp.Modules;
using VaeKit.Config;
using VaeKit.Layers;
using static TorchSharp.torch;

namespace VaeKit;

/// <summary>One row of <c>vae info</c>: a layer, its output shape for one image, its own parameters.</summary>
public sealed record LayerRow(string Name, string Type, long[] OutputShape, long Parameters);

/// <summary>The layer table and parameter count of a configuration, measured on a real model (not computed on paper).</summary>
public sealed record ModelSummary(ModelConfig Config, long Parameters, IReadOnlyList<LayerRow> Layers)
{
    /// <summary>Builds a model of <paramref name="config"/> on the CPU and runs one image through it to record each layer's output shape and parameters.</summary>
    public static ModelSummary Of(ModelConfig config)
    {
        using var scope = NewDisposeScope();
        using var model = Models.ModelFactory.Create(config);
        var fired = new List<(string Name, nn.Module<Tensor, Tensor> Module, long[] Shape)>();   // in execution order
        var removers = new List<Action>();

        var blocks = new List<string>();
        foreach (var (name, module) in model.named_modules())
        {
            // Residual blocks are shown whole; their insides add nothing but length.
            if (blocks.Any(b => name.StartsWith(b + ".", StringComparison.Ordinal))) continue;
            if (module is ResidualBlock) blocks.Add(name);
            if (module is not (Conv2d or ConvTranspose2d or Linear or ResidualBlock or BatchNorm2d or GroupNorm)) continue;
            if (module is BatchNorm2d or GroupNorm && !name.EndsWith("norm_out", StringComparison.Ordinal)) continue;
            var layer = (nn.Module<Tensor, Tensor>)module;
            string key = name;
            var remover = layer.register_forward_hook((m, _, output) => { fired.Add((key, m, output.shape[1..])); return output; });
            removers.Add(remover.remove);
        }

        model.eval();
        using (no_grad())
            model.call(zeros(1, config.InChannels, config.ImageSize, config.ImageSize));
        foreach (var remove in removers) remove();

        var layers = fired.Select(r => new LayerRow(r.Name, r.Module.GetType().Name, r.Shape, r.Module.parameters().Sum(p => p.numel()))).ToList();
        return new ModelSummary(config, model.ParameterCount, layers);
    }
}
