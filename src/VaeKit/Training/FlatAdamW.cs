using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter 2019) over a <see cref="FlatParameters"/> buffer, with the same arithmetic as
/// PyTorch's <c>torch.optim.AdamW</c> (amsgrad off): decoupled decay p ← p·(1 − lr·wd), then
/// m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε).
/// Weight decay applies where <c>decayMask</c> is 1 (conv and linear weights), so the two parameter groups of the
/// usual recipe are one buffer and a mask. About ten kernels per step whatever the parameter count, and no host
/// synchronisation: the step count lives on the host, the gradient norm stays on the device. An optional step-scale
/// buffer multiplies the learning rate per element (a family's own step size for one parameter); without one the
/// step costs nothing extra.
/// </summary>
internal sealed class FlatAdamW : IFlatOptimizer
{
    private readonly FlatParameters _flat;
    private readonly Tensor _decayMask;    // (P) 1 = decay
    private readonly Tensor _m;            // (P) first moment
    private readonly Tensor _v;            // (P) second moment
    private readonly Tensor? _stepScale;   // (P) per-element learning-rate multiplier; null = 1 everywhere

    /// <param name="decayMask">(P) 1 where weight decay applies, else 0; the optimizer owns (disposes) it.</param>
    /// <param name="stepScale">(P) learning-rate multiplier per element, or null for 1 everywhere; owned likewise.</param>
    public FlatAdamW(FlatParameters flat, Tensor decayMask, double beta1, double beta2, double weightDecay, double eps = 1e-8,
                     Tensor? stepScale = null)
    {
        _stepScale = stepScale?.DetachFromDisposeScope();
        _flat = flat;
        _decayMask = decayMask.DetachFromDisposeScope();
        Beta1 = beta1;
        Beta2 = beta2;
        WeightDecay = weightDecay;
        Eps = eps;
        _m = zeros_like(flat.Values).DetachFromDisposeScope();
        _v = zeros_like(flat.Values).DetachFromDisposeScope();
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double WeightDecay { get; }
    public double Eps { get; }

    /// <summary>Updates taken so far (t in the bias corrections).</summary>
    public long Steps { get; private set; }

    public void ZeroGrad() => _flat.Grads.zero_();

    /// <summary>
    /// The L2 norm of all gradients together, and — when <paramref name="maxNorm"/> is positive — gradients scaled
    /// down so that norm is at most maxNorm (the rule of <c>torch.nn.utils.clip_grad_norm_</c>). Returns the norm
    /// before clipping as a 0-dim tensor on the device: reading it is the caller's choice of when to synchronise.
    /// </summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        var norm = _flat.Grads.norm(2f);
        if (maxNorm > 0)
        {
            using var coefficient = (maxNorm / (norm + 1e-6)).clamp_max(1.0);
            _flat.Grads.mul_(coefficient);
        }
        return norm;
    }

    public void Step(double learningRate)
    {
        using var scope = NewDisposeScope();
        Steps++;
        var p = _flat.Values;
        var g = _flat.Grads;
        if (WeightDecay != 0)
            p.addcmul_(p, _decayMask, -learningRate * WeightDecay);
        _m.mul_(Beta1).add_(g, 1 - Beta1);
        _v.mul_(Beta2).addcmul_(g, g, 1 - Beta2);
        double biasCorrection1 = 1 - Math.Pow(Beta1, Steps);
        double biasCorrection2 = 1 - Math.Pow(Beta2, Steps);
        var denominator = _v.sqrt().div_(Math.Sqrt(biasCorrection2)).add_(Eps);
        var update = _stepScale is null ? _m : _m.mul(_stepScale);
        p.addcdiv_(update, denominator, -learningRate / biasCorrection1);
    }

    /// <summary>Step count, then both moments as raw bytes (little-endian float32, slot order).</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write(Steps);
        WriteTensor(writer, _m);
        WriteTensor(writer, _v);
    }

    public void Load(BinaryReader reader)
    {
        long steps = reader.ReadInt64();
        if (steps < 0) throw new InvalidDataException($"implausible optimizer step count {steps}");
        ReadTensor(reader, _m);
        ReadTensor(reader, _v);
        Steps = steps;
    }

    private static void WriteTensor(BinaryWriter writer, Tensor t)
    {
        using var host = t.cpu();
        var bytes = host.bytes;
        writer.Write((long)bytes.Length);
        writer.Write(bytes);
    }

    private static void ReadTensor(BinaryReader reader, Tensor into)
    {
        long length = reader.ReadInt64();
        long expected = into.numel() * into.element_size();
        if (length != expected)
            throw new InvalidDataException($"optimizer state holds {length} bytes, the model needs {expected}: another architecture");
        using var host = empty_like(into, device: CPU);
        var buffer = reader.ReadBytes(checked((int)length));
        if (buffer.Length != length) throw new EndOfStreamException("optimizer state is truncated");
        host.bytes = buffer;
        into.copy_(host);
    }

    public void Dispose()
    {
        _decayMask.Dispose();
        _stepScale?.Dispose();
        _m.Dispose();
        _v.Dispose();
    }
}
