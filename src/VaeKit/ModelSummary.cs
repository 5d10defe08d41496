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
    public static ModelSummary Of(ModelConfig config)
    {
        config.Validate();
        using var scope = NewDisposeScope();
        using var model = new AutoEncoder(config);
        var shapes = new Dictionary<string, long[]>();
        var rows = new List<(string Name, nn.Module<Tensor, Tensor> Module)>();
        var removers = new List<IDisposable>();

        foreach (var (name, module) in model.named_modules())
        {
            // Residual blocks are shown whole; their insides add nothing but length.
            if (name.Contains(".blocks.") && name.Split('.').Length > 5) continue;
            if (module is not (Conv2d or ConvTranspose2d or Linear or ResidualBlock or BatchNorm2d or GroupNorm)) continue;
            if (module is BatchNorm2d or GroupNorm && !name.EndsWith("norm_out", StringComparison.Ordinal)) continue;
            var layer = (nn.Module<Tensor, Tensor>)module;
            rows.Add((name, layer));
            string key = name;
            removers.Add(layer.register_forward_hook((_, _, output) => { shapes[key] = output.shape[1..]; return output; }));
        }

        model.eval();
        using (no_grad())
            model.call(zeros(1, config.InChannels, config.ImageSize, config.ImageSize));
        foreach (var remover in removers) remover.Dispose();

        var layers = rows.Select(r => new LayerRow(r.Name, r.Module.GetType().Name, shapes.GetValueOrDefault(r.Name, []),
                                                   r.Module.parameters().Sum(p => p.numel()))).ToList();
        return new ModelSummary(config, model.ParameterCount, layers);
    }
}
