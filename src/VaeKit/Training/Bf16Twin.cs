using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// The bf16 compute copy of a trained module (<see cref="Config.Precision.Bf16"/>): a second module of the same architecture
/// whose conv and linear weights are bf16 views of one twin buffer, a copy of the first
/// <see cref="FlatParameters"/> prefix of the fp32 master; its normalisation layers keep fp32 and share the master's
/// parameters, gradients and running statistics, so BatchNorm statistics gathered in training are the ones
/// evaluation uses. Each step the trainer refreshes the twin from the master, runs forward and backward on it, and
/// copies its gradients back; the optimizer only ever sees the master. TorchSharp has no autocast: this is the
/// explicit form of mixed precision.
/// </summary>
internal sealed class Bf16Twin : IDisposable
{
    private readonly FlatParameters _flat;      // the twin's bf16 weights, in the master's order
    private readonly long _count;                 // elements of the master's low-precision prefix

    private Bf16Twin(nn.Module model, FlatParameters flat, long count, bool channelsLast)
    {
        Model = model;
        _flat = flat;
        _count = count;
        ChannelsLast = channelsLast;
    }

    /// <summary>The bf16 module; its input is bf16 (<see cref="Input"/>).</summary>
    public nn.Module Model { get; }

    /// <summary>Whether the twin computes in the channels-last layout (NHWC strides, cuDNN's tensor-core layout).</summary>
    public bool ChannelsLast { get; }

    /// <summary>
    /// Builds the twin of <paramref name="master"/> on <paramref name="device"/> from a fresh module of the same
    /// architecture (<paramref name="create"/>). <paramref name="normModules"/> are the master's normalisation layers
    /// (kept fp32 and shared); <paramref name="lowPrecisionCount"/> is the length of the master buffer's conv/linear
    /// prefix, which the twin's buffer must match.
    /// </summary>
    public static Bf16Twin Build(nn.Module master, Func<nn.Module> create, IReadOnlySet<string> normModules, long lowPrecisionCount, Device device,
                                 bool channelsLast)
    {
        var twin = create();
        twin.to(device);
        foreach (var (name, module) in twin.named_modules())
            if (name.Length > 0 && !normModules.Contains(name) && !module.named_modules().Skip(1).Any())
                module.to(ScalarType.BFloat16);

        var masterParameters = master.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var masterBuffers = master.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        using (no_grad())
        {
            foreach (var (name, p) in twin.named_parameters().Where(p => normModules.Contains(OwnerOf(p.name))))
            {
                var shared = masterParameters[name];
                p.set_(shared);
                p.grad = shared.grad;
            }
            foreach (var (name, buffer) in twin.named_buffers())
                buffer.set_(masterBuffers[name]);
        }
        var low = twin.named_parameters().Where(p => !normModules.Contains(OwnerOf(p.name))).ToList();
        var flat = new FlatParameters(low, ScalarType.BFloat16, channelsLast);
        if (flat.Count != lowPrecisionCount)
            throw new InvalidOperationException($"bf16 twin has {flat.Count} low-precision elements, the master {lowPrecisionCount}");
        return new Bf16Twin(twin, flat, lowPrecisionCount, channelsLast);
    }

    /// <summary>The module a parameter belongs to (<c>enc.0.conv.weight</c> → <c>enc.0.conv</c>).</summary>
    internal static string OwnerOf(string parameterName) =>
        parameterName.LastIndexOf('.') is int dot and > 0 ? parameterName[..dot] : "";

    /// <summary>x (B, C, s, s) fp32 → the twin's input: bf16, with NHWC strides when <see cref="ChannelsLast"/>.</summary>
    public Tensor Input(Tensor x)
    {
        var input = x.to(ScalarType.BFloat16);
        return ChannelsLast ? input.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : input;   // NCHW shape, NHWC strides
    }

    /// <summary>The twin's output in fp32, for an fp32 objective.</summary>
    public static ModelOutput ToFloat32(ModelOutput output) =>
        new(output.Reconstruction.to(ScalarType.Float32), output.Posterior.ToFloat32(), output.Z);

    /// <summary>Twin weights ← master weights: one cast, or one per parameter in the channels-last layout.</summary>
    public void Refresh(FlatParameters master)
    {
        using var noGrad = no_grad();
        if (!_flat.HasChannelsLast)
        {
            _flat.Values.copy_(master.Values.narrow(0, 0, _count));
            return;
        }
        for (int i = 0; i < _flat.Slots.Count; i++)
            _flat.Slots[i].Parameter.copy_(master.Slots[i].Parameter);
    }

    /// <summary>Zeroes the twin's own gradients (the shared norm gradients are the master's).</summary>
    public void ZeroGrad() => _flat.Grads.zero_();

    /// <summary>Master gradients ← twin gradients (norm layers already wrote theirs to the master).</summary>
    public void CopyGradients(FlatParameters master)
    {
        if (!_flat.HasChannelsLast)
        {
            master.Grads.narrow(0, 0, _count).copy_(_flat.Grads);
            return;
        }
        for (int i = 0; i < _flat.Slots.Count; i++)
            master.Slots[i].Parameter.grad!.copy_(_flat.Slots[i].Parameter.grad!);
    }

    public void Dispose()
    {
        Model.Dispose();
        _flat.Dispose();
    }
}
