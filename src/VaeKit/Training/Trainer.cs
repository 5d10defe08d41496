using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>Host-side numbers of one training step (batch means; mse is per pixel).</summary>
public sealed record StepMetrics(
    long Step, double Loss, double Reconstruction, double Kl, double Mse, double Psnr,
    double KlWeight, double LearningRate, double GradNorm);

/// <summary>
/// A step whose numbers are still on the device: (4) float32 = loss, reconstruction, KL, gradient norm. Reading many
/// at once with <c>Trainer.Resolve</c> costs one host synchronisation instead of one per step.
/// </summary>
public sealed record PendingStep(long Step, double LearningRate, double KlWeight, long PixelsPerImage, Tensor Values) : IDisposable
{
    public void Dispose() => Values.Dispose();
}

/// <summary>
/// The lab's two operations on one model: <see cref="BatchUpdate"/> (one optimizer step) and
/// <see cref="BatchMetrics"/> (a no-grad metrics pass). Owns the optimizer state and the step counter; knows nothing
/// about files, epochs or datasets.
/// </summary>
/// <remarks>
/// The parameters live in one flat buffer (<see cref="FlatParameters"/>) updated by <see cref="FlatAdamW"/>, so the
/// optimizer and gradient clipping cost a few kernels per step, not several per tensor.
/// With <see cref="Precision.Bf16"/> the forward and backward passes run on a bf16 twin of the model: its conv and
/// linear weights are a bf16 copy of the fp32 master buffer (one cast per step), its normalisation layers share the
/// master's fp32 parameters and running statistics, and the losses are computed in fp32. The optimizer updates the
/// fp32 master weights, which are what checkpoints, validation and sampling use. TorchSharp has no autocast, so
/// this is the explicit form of mixed precision.
/// </remarks>
public sealed class Trainer : IDisposable
{
    private readonly FlatParameters _flat;
    private readonly FlatAdamW _optimizer;
    private readonly Generator _noise;            // CPU noise; on CUDA the device's default generator is seeded instead
    private readonly bool _onGpu;
    private readonly AutoEncoder? _twin;          // bf16 compute copy (Precision.Bf16 only)
    private readonly FlatParameters? _twinFlat;   // its bf16 weights: a prefix of _flat in the same order

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    /// <param name="precision">Arithmetic of the forward and backward passes.</param>
    /// <param name="channelsLast">bf16 only: NHWC conv weights and activations in the twin (cuDNN's tensor-core
    /// layout); null = on for CUDA, off for CPU.</param>
    public Trainer(AutoEncoder model, TrainConfig config, long totalSteps, Precision precision = Precision.Fp32, bool? channelsLast = null)
    {
        Model = model;
        Config = config.Validate();
        TotalSteps = totalSteps;
        Precision = precision;
        var device = model.parameters().First().device;
        _onGpu = device.type == DeviceType.CUDA;
        _noise = new Generator((ulong)config.Seed + 0x5EEDUL);
        model.Noise = _onGpu ? null : _noise;

        // Layout: parameters the bf16 twin computes with (conv and linear) first, normalisation parameters last, so
        // the twin's weights are one contiguous prefix of the master buffer.
        var normModules = NormModuleNames(model);
        var named = model.named_parameters().ToList();
        var low = named.Where(p => !normModules.Contains(Owner(p.name))).ToList();
        var norm = named.Where(p => normModules.Contains(Owner(p.name))).ToList();
        _flat = new FlatParameters([.. low, .. norm]);
        LowPrecisionCount = low.Sum(p => p.parameter.numel());

        // Decoupled weight decay on conv/linear weights only: decaying norm scales and biases toward zero fights
        // normalisation and buys nothing.
        _optimizer = new FlatAdamW(_flat, _flat.Mask(slot => slot.Parameter.dim() > 1), config.Beta1, config.Beta2, config.WeightDecay);

        ChannelsLast = precision == Precision.Bf16 && (channelsLast ?? _onGpu);
        if (precision == Precision.Bf16)
            (_twin, _twinFlat) = BuildTwin(model, normModules, device, ChannelsLast);
        RefreshTwin();
    }

    public AutoEncoder Model { get; }
    public TrainConfig Config { get; }
    public long TotalSteps { get; }
    public Precision Precision { get; }

    /// <summary>Whether the bf16 twin computes in the channels-last layout.</summary>
    public bool ChannelsLast { get; }

    /// <summary>Elements of the master buffer that the bf16 twin holds in bf16 (conv and linear parameters).</summary>
    public long LowPrecisionCount { get; }

    /// <summary>All parameters as one buffer (tests and tools; do not resize).</summary>
    public FlatParameters Parameters => _flat;

    /// <summary>Optimizer steps taken so far (restored by <see cref="LoadState"/>).</summary>
    public long Step { get; private set; }

    /// <summary>
    /// One training step on a batch x (B, C, s, s) in [0, 1]: forward (posterior sample), loss, backward, gradient
    /// clipping, AdamW. Reads the step's numbers back to the host before the optimizer step, which is also where a
    /// NaN/Inf loss is caught, so the weights in memory stay finite.
    /// </summary>
    /// <exception cref="DivergedException">the loss or the gradient norm is not finite.</exception>
    public StepMetrics BatchUpdate(Tensor x)
    {
        using var pending = Update(x, checkFirst: true, out var host);
        return Metrics(pending, host!);
    }

    /// <summary>
    /// The same step without reading anything back: on a GPU the host runs ahead and queues the next batch while this
    /// one computes. A non-finite loss is found only when the step is resolved, after later steps were taken: a caller
    /// must resolve (<c>Resolve</c>) before it saves anything. The caller owns (disposes) the result.
    /// </summary>
    public PendingStep BatchUpdateDeferred(Tensor x) => Update(x, checkFirst: false, out _);

    /// <param name="host">With <paramref name="checkFirst"/>: the step's numbers, already read back to check them.</param>
    private PendingStep Update(Tensor x, bool checkFirst, out float[]? host)
    {
        host = null;
        using var scope = NewDisposeScope();
        double lr = LearningRate.At(Config, Step, TotalSteps);
        double klWeight = KlSchedule.At(Config, Step, TotalSteps);   // effective: after --kl-schedule
        var model = _twin ?? Model;
        model.train();
        SeedNoise();

        var input = _twin is null ? x : x.to(ScalarType.BFloat16);
        if (ChannelsLast)
            input = input.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);   // NCHW shape, NHWC strides
        var output = model.call(input);
        if (_twin is not null)
            output = new ModelOutput(output.Reconstruction.to(ScalarType.Float32), output.Mu.to(ScalarType.Float32),
                                     output.LogVar?.to(ScalarType.Float32), output.Z);
        var terms = Losses.Compute(output, x, klWeight, Config.FreeBits);

        _optimizer.ZeroGrad();
        _twinFlat?.Grads.zero_();
        terms.Loss.backward();
        if (_twinFlat is not null)
            CopyTwinGradients();
        var gradNorm = _optimizer.ClipGradNorm(Config.GradClip);
        var values = stack([terms.Loss.detach(), terms.Reconstruction.detach(), terms.Kl.detach(), gradNorm.to(ScalarType.Float32)]);

        if (checkFirst)
        {
            host = values.cpu().data<float>().ToArray();
            if (!float.IsFinite(host[0]) || !float.IsFinite(host[3]))
                throw Diverged(Step + 1, host[0], host[3]);
        }

        _optimizer.Step(lr);
        RefreshTwin();
        Step++;
        return new PendingStep(Step, lr, klWeight, PixelsPerImage(x), values.DetachFromDisposeScope());   // owned by the caller
    }

    /// <summary>
    /// Reads pending steps back in one transfer, in order. Throws <see cref="DivergedException"/> for the first step
    /// whose loss or gradient norm is not finite.
    /// </summary>
    public IReadOnlyList<StepMetrics> Resolve(IReadOnlyList<PendingStep> steps)
    {
        var result = Resolve(steps, out var divergence);
        return divergence is null ? result : throw divergence;
    }

    /// <summary>
    /// Reads pending steps back in one transfer, in order, up to the first whose loss or gradient norm is not
    /// finite: the steps before it are returned, <paramref name="divergence"/> names it (the weights after it are not
    /// valid and must not be saved).
    /// </summary>
    public IReadOnlyList<StepMetrics> Resolve(IReadOnlyList<PendingStep> steps, out DivergedException? divergence)
    {
        divergence = null;
        if (steps.Count == 0) return [];
        float[] host;
        using (var scope = NewDisposeScope())
            host = stack(steps.Select(s => s.Values).ToArray()).cpu().data<float>().ToArray();
        var result = new List<StepMetrics>(steps.Count);
        for (int i = 0; i < steps.Count; i++)
        {
            var values = host.AsSpan(4 * i, 4);
            if (!float.IsFinite(values[0]) || !float.IsFinite(values[3]))
            {
                divergence = Diverged(steps[i].Step, values[0], values[3]);
                break;
            }
            result.Add(Metrics(steps[i], values));
        }
        return result;
    }

    /// <summary>A step's host numbers: values = loss, reconstruction, KL, gradient norm.</summary>
    private static StepMetrics Metrics(PendingStep s, ReadOnlySpan<float> values)
    {
        double mse = values[1] / s.PixelsPerImage;
        return new StepMetrics(s.Step, values[0], values[1], values[2], mse, Losses.Psnr(mse), s.KlWeight, s.LearningRate, values[3]);
    }

    private DivergedException Diverged(long step, double loss, double gradNorm) => new(
        $"Training diverged at step {step}: the loss is {loss} (gradient norm {gradNorm}). " +
        $"Lower the learning rate (--lr, now {Config.LearningRate}) or the KL weight (--kl-weight, now {Config.KlWeight}).");

    /// <summary>
    /// Metrics of a batch without gradients, in evaluation mode (running BatchNorm statistics, z = mu), added to
    /// <paramref name="sums"/>. The caller restores training mode (the next <see cref="BatchUpdate"/> does).
    /// </summary>
    public void BatchMetrics(Tensor x, MetricSums sums)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Model.eval();
        var output = Model.call(x);
        var reconstruction = Losses.SquaredErrorPerImage(output.Reconstruction, x);                     // (B)
        var kl = output.LogVar is null ? zeros_like(reconstruction) : Losses.KlPerImage(output.Mu, output.LogVar);
        var host = stack([reconstruction.sum(), kl.sum()]).to(float64).cpu().data<double>().ToArray();
        sums.Add(images: x.shape[0], reconstruction: host[0], kl: host[1], pixelsPerImage: PixelsPerImage(x));
    }

    /// <summary>
    /// Step, model weights and buffers, optimizer moments: everything a bit-exact resume needs (the noise is a
    /// function of the step). The layout is step (int64), then the model (also what <see cref="Checkpoint.LoadModel"/> reads), then the rest.
    /// </summary>
    public void SaveState(BinaryWriter writer)
    {
        writer.Write(Step);
        Model.save(writer);
        _optimizer.Save(writer);
    }

    public void LoadState(BinaryReader reader)
    {
        Step = reader.ReadInt64();
        Model.load(reader, strict: true);
        _optimizer.Load(reader);
        RefreshTwin();
    }

    /// <summary>
    /// The reparameterisation noise of step t comes from a generator seeded by (seed, t): a resumed run draws exactly
    /// the noise it would have drawn, with no generator state to save. TorchSharp's <c>Generator</c> is CPU-only, so on
    /// CUDA the device's default generator is seeded the same way (nothing else in training draws from it).
    /// </summary>
    private void SeedNoise()
    {
        long seed = unchecked((long)(((ulong)Config.Seed + 0x5EEDUL) * 1_000_003UL + (ulong)Step));
        if (_onGpu) cuda.manual_seed(seed);
        else _noise.manual_seed(seed);
    }

    private static long PixelsPerImage(Tensor x) => x.shape[1] * x.shape[2] * x.shape[3];

    private static HashSet<string> NormModuleNames(AutoEncoder model) =>
        model.named_modules().Where(m => m.module is BatchNorm2d or GroupNorm).Select(m => m.name).ToHashSet();

    private static string Owner(string parameterName) =>
        parameterName.LastIndexOf('.') is int dot and > 0 ? parameterName[..dot] : "";

    /// <summary>
    /// A second model of the same architecture for bf16 compute. Conv and linear layers become bf16 views of the twin
    /// buffer; normalisation layers keep fp32 and share the master's parameters, gradients and running statistics,
    /// so BatchNorm statistics gathered in training are the ones evaluation uses.
    /// </summary>
    /// <summary>bf16 twin weights ← fp32 master weights: one cast, or one per parameter in the channels-last layout.</summary>
    private void RefreshTwin()
    {
        if (_twinFlat is null) return;
        using var noGrad = no_grad();
        if (!_twinFlat.HasChannelsLast)
        {
            _twinFlat.Values.copy_(_flat.Values.narrow(0, 0, LowPrecisionCount));
            return;
        }
        for (int i = 0; i < _twinFlat.Slots.Count; i++)
            _twinFlat.Slots[i].Parameter.copy_(_flat.Slots[i].Parameter);
    }

    /// <summary>fp32 master gradients ← bf16 twin gradients (norm layers already wrote theirs to the master).</summary>
    private void CopyTwinGradients()
    {
        if (!_twinFlat!.HasChannelsLast)
        {
            _flat.Grads.narrow(0, 0, LowPrecisionCount).copy_(_twinFlat.Grads);
            return;
        }
        for (int i = 0; i < _twinFlat.Slots.Count; i++)
            _flat.Slots[i].Parameter.grad!.copy_(_twinFlat.Slots[i].Parameter.grad!);
    }

    private (AutoEncoder, FlatParameters) BuildTwin(AutoEncoder master, HashSet<string> normModules, Device device, bool channelsLast)
    {
        var twin = new AutoEncoder(master.Config);
        twin.to(device);
        foreach (var (name, module) in twin.named_modules())
            if (name.Length > 0 && !normModules.Contains(name) && !module.named_modules().Skip(1).Any())
                module.to(ScalarType.BFloat16);
        twin.Noise = _onGpu ? null : _noise;

        var masterParameters = master.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var masterBuffers = master.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        using (no_grad())
        {
            foreach (var (name, p) in twin.named_parameters().Where(p => normModules.Contains(Owner(p.name))))
            {
                var shared = masterParameters[name];
                p.set_(shared);
                p.grad = shared.grad;
            }
            foreach (var (name, buffer) in twin.named_buffers())
                buffer.set_(masterBuffers[name]);
        }
        var low = twin.named_parameters().Where(p => !normModules.Contains(Owner(p.name))).ToList();
        var flat = new FlatParameters(low, ScalarType.BFloat16, channelsLast);
        if (flat.Count != LowPrecisionCount)
            throw new InvalidOperationException($"bf16 twin has {flat.Count} low-precision elements, the master {LowPrecisionCount}");
        return (twin, flat);
    }

    public void Dispose()
    {
        Model.Noise = null;
        _twin?.Dispose();
        _twinFlat?.Dispose();
        _noise.Dispose();
        _optimizer.Dispose();
        _flat.Dispose();
    }
}

/// <summary>Running sums over a split; per-image and per-pixel means come out at the end.</summary>
public sealed class MetricSums
{
    public long Images { get; private set; }
    public double ReconstructionSum { get; private set; }
    public double KlSum { get; private set; }
    public long PixelsPerImage { get; private set; }

    public void Add(long images, double reconstruction, double kl, long pixelsPerImage)
    {
        Images += images;
        ReconstructionSum += reconstruction;
        KlSum += kl;
        PixelsPerImage = pixelsPerImage;
    }

    public EvalMetrics Result(double klWeight, bool variational)
    {
        if (Images == 0) throw new InvalidOperationException("no images were evaluated");
        double reconstruction = ReconstructionSum / Images;
        double kl = KlSum / Images;
        double mse = reconstruction / PixelsPerImage;
        double loss = reconstruction + (variational ? klWeight * kl : 0);
        return new EvalMetrics(loss, reconstruction, kl, mse, Losses.Psnr(mse), Images);
    }
}

/// <summary>Split-level means: loss and reconstruction/KL per image, mse per pixel, PSNR (dB) from that mse.</summary>
public sealed record EvalMetrics(double Loss, double Reconstruction, double Kl, double Mse, double Psnr, long Images);
