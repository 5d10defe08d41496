using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// One module the trainer updates, with everything that belongs to it alone: its parameters in one flat buffer
/// (<see cref="FlatParameters"/>), its own optimizer and learning rate, its gradient clipping, and with
/// <see cref="Precision.Bf16"/> its bf16 compute twin. The trainer holds one per module (the autoencoder, then the
/// discriminator when there is one) and takes their steps in that order; a checkpoint holds each one's weights and
/// optimizer state in the same order.
/// </summary>
internal sealed class OptimizedModule : IDisposable
{
    /// <param name="name">How checkpoints and messages name it ("autoencoder", "discriminator").</param>
    /// <param name="module">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="create">A fresh module of the same architecture, for the bf16 twin (called only with bf16).</param>
    /// <param name="optimizer">Builds the optimizer over the flat buffer.</param>
    /// <param name="learningRate">The learning rate at a step (0-based, before the update).</param>
    /// <param name="gradClip">Global gradient-norm clipping threshold; 0 = off.</param>
    public OptimizedModule(string name, nn.Module module, Func<nn.Module> create, Func<FlatParameters, IFlatOptimizer> optimizer,
                           Func<long, double> learningRate, double gradClip, Precision precision, bool channelsLast)
    {
        Name = name;
        Module = module;
        LearningRate = learningRate;
        GradClip = gradClip;

        // Layout: parameters the bf16 twin computes with (conv and linear) first, normalisation parameters last, so
        // the twin's weights are one contiguous prefix of the master buffer.
        var normModules = module.named_modules().Where(m => m.module is BatchNorm2d or GroupNorm).Select(m => m.name).ToHashSet();
        var named = module.named_parameters().ToList();
        var low = named.Where(p => !normModules.Contains(Bf16Twin.OwnerOf(p.name))).ToList();
        var norm = named.Where(p => normModules.Contains(Bf16Twin.OwnerOf(p.name))).ToList();
        Parameters = new FlatParameters([.. low, .. norm]);
        LowPrecisionCount = low.Sum(p => p.parameter.numel());
        Optimizer = optimizer(Parameters);
        if (precision == Precision.Bf16)
        {
            Twin = Bf16Twin.Build(module, create, normModules, LowPrecisionCount, Parameters.Values.device, channelsLast);
            Twin.Refresh(Parameters);
        }
    }

    /// <summary>How checkpoints and messages name it.</summary>
    public string Name { get; }

    /// <summary>The fp32 master module: what checkpoints, validation and sampling use.</summary>
    public nn.Module Module { get; }

    /// <summary>The module the forward and backward passes run on: the bf16 twin, else the master.</summary>
    public nn.Module Compute => Twin?.Model ?? Module;

    /// <summary>The bf16 compute copy (<see cref="Precision.Bf16"/> only).</summary>
    public Bf16Twin? Twin { get; }

    public FlatParameters Parameters { get; }

    public IFlatOptimizer Optimizer { get; }

    /// <summary>Elements of the master buffer that the bf16 twin holds in bf16 (conv and linear parameters).</summary>
    public long LowPrecisionCount { get; }

    public Func<long, double> LearningRate { get; }

    public double GradClip { get; }

    /// <summary>The input of <see cref="Compute"/>: bf16 (channels-last strides if so built) for a twin, else as is.</summary>
    public Tensor Input(Tensor x) => Twin?.Input(x) ?? x;

    /// <summary>Zeroes the gradients of the master buffer and of the twin.</summary>
    public void ZeroGrad()
    {
        Optimizer.ZeroGrad();
        Twin?.ZeroGrad();
    }

    /// <summary>After backward: the twin's gradients into the master buffer, then clipping; the norm before clipping,
    /// on the device.</summary>
    public Tensor FinishBackward()
    {
        Twin?.CopyGradients(Parameters);
        return Optimizer.ClipGradNorm(GradClip);
    }

    /// <summary>Whether backward passes compute this module's parameter gradients: off while another module's loss
    /// flows through it (the autoencoder's generator term through the discriminator), so none are computed in vain.</summary>
    public void RequiresGrad(bool value)
    {
        foreach (var p in Compute.parameters()) p.requires_grad_(value);
    }

    /// <summary>One optimizer update at step <paramref name="step"/>'s learning rate, then the twin refreshed.</summary>
    public void Step(long step)
    {
        Optimizer.Step(LearningRate(step));
        Twin?.Refresh(Parameters);
    }

    /// <summary>Weights and buffers (by name), then the optimizer state.</summary>
    public void Save(BinaryWriter writer)
    {
        Module.save(writer);
        Optimizer.Save(writer);
    }

    /// <summary>Reads what <see cref="Save"/> wrote.</summary>
    public void Load(BinaryReader reader)
    {
        Module.load(reader, strict: true);
        Optimizer.Load(reader);
        Twin?.Refresh(Parameters);
    }

    /// <summary>Disposes the optimizer, the twin and the buffers; not the master module (its owner's).</summary>
    public void Dispose()
    {
        Twin?.Dispose();
        Optimizer.Dispose();
        Parameters.Dispose();
    }
}
