using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// A module's parameters re-homed as views into one contiguous buffer, with their gradients as views into a second
/// one. The model still sees ordinary parameters (autograd accumulates into the gradient views in place), but
/// everything that touches all parameters at once — zeroing gradients, the gradient norm, clipping, the AdamW update,
/// the bf16 weight copy — becomes a handful of large kernels instead of several small ones per tensor. That per-tensor
/// launch cost is what PyTorch's multi-tensor ("foreach") optimizers remove; TorchSharp 0.107 has none.
/// </summary>
/// <remarks>
/// Parameters keep their order in the buffer; <see cref="Slots"/> says where each one lives. Rebinding uses
/// <c>Tensor.set_</c> under no_grad, so the module's own <c>Parameter</c> objects (and with them save/load and
/// <c>parameters()</c>) stay valid.
/// </remarks>
internal sealed class FlatParameters : IDisposable
{
    /// <summary>Where one parameter lives: [Offset, Offset + Count) of <see cref="Values"/> and <see cref="Grads"/>.</summary>
    public sealed record Slot(string Name, Parameter Parameter, long Offset, long Count, bool ChannelsLast = false);

    /// <param name="parameters">Named parameters, all on one device, in the order they should be laid out.</param>
    /// <param name="dtype">Buffer type; parameters of another type are converted (the bf16 compute copy).</param>
    /// <param name="channelsLast">Lay 4-d (conv) weights out as (O, kh, kw, I) inside their slot, viewed as
    /// (O, I, kh, kw) with channels-last strides, so cuDNN picks its NHWC tensor-core kernels. Such slots no longer
    /// match a plain buffer element for element: copy them per parameter.</param>
    public FlatParameters(IReadOnlyList<(string Name, Parameter Parameter)> parameters, ScalarType? dtype = null, bool channelsLast = false)
    {
        if (parameters.Count == 0) throw new ArgumentException("no parameters to flatten", nameof(parameters));
        var device = parameters[0].Parameter.device;
        var type = dtype ?? parameters[0].Parameter.dtype;
        long total = parameters.Sum(p => p.Parameter.numel());
        Values = zeros(total, dtype: type, device: device).DetachFromDisposeScope();
        Grads = zeros(total, dtype: type, device: device).DetachFromDisposeScope();

        var slots = new List<Slot>(parameters.Count);
        long offset = 0;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            foreach (var (name, p) in parameters)
            {
                if (p.device.type != device.type || p.device.index != device.index) throw new ArgumentException($"parameter {name} is on {p.device}, not {device}");
                long count = p.numel();
                var shape = p.shape;
                bool permuted = channelsLast && shape.Length == 4;
                Tensor View(Tensor buffer) => permuted
                    ? buffer.narrow(0, offset, count).view(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2)
                    : buffer.narrow(0, offset, count).view(shape);
                var value = View(Values);
                value.copy_(p);
                p.set_(value);
                if (type != p.dtype) throw new InvalidOperationException($"set_ kept {p.dtype} for {name}");
                // Autograd adds into an existing gradient in place, so the gradient stays a view of Grads.
                p.grad = View(Grads);
                slots.Add(new Slot(name, p, offset, count, permuted));
                offset += count;
            }
        }
        Slots = slots;
    }

    /// <summary>(P) all parameter values, in slot order.</summary>
    public Tensor Values { get; }

    /// <summary>(P) all gradients, in slot order.</summary>
    public Tensor Grads { get; }

    public IReadOnlyList<Slot> Slots { get; }

    public long Count => Values.shape[0];

    /// <summary>True when some slot has the channels-last layout (see the constructor).</summary>
    public bool HasChannelsLast => Slots.Any(s => s.ChannelsLast);

    /// <summary>(P) 1 where <paramref name="select"/> holds for the slot's parameter, else 0; in the buffer's type.</summary>
    public Tensor Mask(Func<Slot, bool> select) => Fill(slot => select(slot) ? 1 : 0);

    /// <summary>A (P) buffer holding <paramref name="value"/>(slot) over each parameter's elements.</summary>
    public Tensor Fill(Func<Slot, double> value)
    {
        using var scope = NewDisposeScope();
        var mask = zeros(Count, dtype: Values.dtype, device: Values.device);
        foreach (var slot in Slots)
            if (value(slot) is var v && v != 0)
                mask.narrow(0, slot.Offset, slot.Count).fill_(v);
        return mask.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Values.Dispose();
        Grads.Dispose();
    }
}
