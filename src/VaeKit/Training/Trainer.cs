using VaeKit.Data;
using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// Host-side numbers of one training step, by name (<see cref="MetricNames"/>): loss, the objective's terms
/// (reconstruction, kl, mse, … as the model family names them), psnr, kl_weight, lr and grad_norm.
/// </summary>
public sealed record StepMetrics(long Step, IReadOnlyDictionary<string, double> Values)
{
    /// <summary>Loss per image (the objective's total, as optimised).</summary>
    public double Loss => Values[MetricNames.Loss];
    /// <summary>Reconstruction term per image (0 when the objective has none).</summary>
    public double Reconstruction => Values.GetValueOrDefault(MetricNames.Reconstruction);
    /// <summary>0 for a model without a KL term.</summary>
    public double Kl => Values.GetValueOrDefault(MetricNames.Kl);
    /// <summary>Mean per-pixel squared error on the [0, 1] scale.</summary>
    public double Mse => Values.GetValueOrDefault(MetricNames.Mse);
    /// <summary>dB, from <see cref="Mse"/>.</summary>
    public double Psnr => Values.GetValueOrDefault(MetricNames.Psnr);
    /// <summary>The effective KL weight of the step (after the KL schedule).</summary>
    public double KlWeight => Values.GetValueOrDefault(MetricNames.KlWeight);
    /// <summary>Learning rate of the step (after warm-up and schedule).</summary>
    public double LearningRate => Values.GetValueOrDefault(MetricNames.LearningRate);
    /// <summary>Global gradient norm before clipping.</summary>
    public double GradNorm => Values.GetValueOrDefault(MetricNames.GradNorm);
}

/// <summary>
/// A step whose numbers are still on the device: <see cref="Values"/> (K + 2) float32 = loss, the K objective terms
/// named by <see cref="Terms"/>, gradient norm. Reading many at once with <c>Trainer.Resolve</c> costs one host
/// synchronisation instead of one per step.
/// </summary>
public sealed record PendingStep(long Step, double LearningRate, double KlWeight, IReadOnlyList<string> Terms, Tensor Values) : IDisposable
{
    /// <summary>The values already read back (a checked step), or null.</summary>
    internal float[]? Host { get; init; }

    /// <inheritdoc/>
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
    private readonly KlSchedule _klSchedule;      // train.kl_schedule, parsed once
    private readonly VaeModel? _twin;          // bf16 compute copy (Precision.Bf16 only)
    private readonly FlatParameters? _twinFlat;   // its bf16 weights: a prefix of _flat in the same order
    private bool _initialised;                    // VaeModel.InitialiseFromBatch has had its one call (or the run resumed)

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    /// <param name="precision">Arithmetic of the forward and backward passes.</param>
    /// <param name="channelsLast">bf16 only: NHWC conv weights and activations in the twin (cuDNN's tensor-core
    /// layout); null = on for CUDA, off for CPU.</param>
    public Trainer(VaeModel model, TrainConfig config, long totalSteps, Precision precision = Precision.Fp32, bool? channelsLast = null)
    {
        Model = model;
        Config = config.Validate();
        _klSchedule = KlSchedule.Parse(Config.KlSchedule);
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
        // A family may give a parameter its own step size (σ-VAE's learned log σ); the scale buffer exists only then.
        var stepScale = _flat.Slots.Any(slot => model.StepSizeScale(slot.Name) != 1)
            ? _flat.Fill(slot => model.StepSizeScale(slot.Name))
            : null;
        _optimizer = new FlatAdamW(_flat, _flat.Mask(slot => slot.Parameter.dim() > 1), config.Beta1, config.Beta2, config.WeightDecay,
                                   stepScale: stepScale);

        ChannelsLast = precision == Precision.Bf16 && (channelsLast ?? _onGpu);
        if (precision == Precision.Bf16)
            (_twin, _twinFlat) = BuildTwin(model, normModules, device, ChannelsLast);
        RefreshTwin();
    }

    /// <summary>The fp32 master model being trained.</summary>
    public VaeModel Model { get; }
    /// <summary>The optimisation hyperparameters.</summary>
    public TrainConfig Config { get; }
    /// <summary>Length of the run in optimizer steps; the learning-rate and KL schedules are functions of the step and this.</summary>
    public long TotalSteps { get; }
    /// <summary>Arithmetic of the training step.</summary>
    public Precision Precision { get; }

    /// <summary>Whether the bf16 twin computes in the channels-last layout.</summary>
    public bool ChannelsLast { get; }

    /// <summary>Elements of the master buffer that the bf16 twin holds in bf16 (conv and linear parameters).</summary>
    public long LowPrecisionCount { get; }

    /// <summary>Issue 13: the bf16 compute twin (Precision.Bf16 only; null otherwise), weights current after every
    /// step. Its input is bf16 (channels-last strides when <see cref="ChannelsLast"/>); used by the bench.</summary>
    internal VaeModel? Bf16Twin => _twin;

    /// <summary>All parameters as one buffer (tests and tools; do not resize).</summary>
    internal FlatParameters Parameters => _flat;

    /// <summary>Optimizer steps taken so far (restored by <see cref="LoadState"/>).</summary>
    public long Step { get; private set; }

    /// <summary>
    /// One training step on a batch x (B, C, s, s) in [0, 1]: forward (posterior sample), objective, backward, gradient
    /// clipping, AdamW. Reads the step's numbers back to the host before the optimizer step, which is also where a
    /// NaN/Inf loss is caught, so the weights in memory stay finite.
    /// </summary>
    /// <exception cref="DivergedException">the loss or the gradient norm is not finite.</exception>
    public StepMetrics BatchUpdate(Tensor x)
    {
        using var pending = BatchUpdateDeferred(x, checkFirst: true);
        return Resolve([pending])[0];
    }

    /// <summary>
    /// The same step, its numbers left on the device unless <paramref name="checkFirst"/>: on a GPU the host runs ahead
    /// and queues the next batch while this one computes. Unchecked, a non-finite loss is found only when the step is
    /// resolved, after later steps were taken: a caller must resolve (<c>Resolve</c>) before it saves anything.
    /// Checked, the numbers are read back before the optimizer step, and a non-finite step is not applied (the step
    /// counter does not move; <c>Resolve</c> reports it). The caller owns (disposes) the result.
    /// </summary>
    public PendingStep BatchUpdateDeferred(Tensor x, bool checkFirst = false)
    {
        using var scope = NewDisposeScope();
        if (Step == 0 && !_initialised)
        {
            using (no_grad()) Model.InitialiseFromBatch(x);
            RefreshTwin();
        }
        _initialised = true;
        double lr = LearningRate.At(Config, Step, TotalSteps);
        double klWeight = _klSchedule.At(Config.KlWeight, Step, TotalSteps);   // effective: after train.kl_schedule
        var model = _twin ?? Model;
        model.train();
        SeedNoise();

        var input = _twin is null ? x : x.to(ScalarType.BFloat16);
        if (ChannelsLast)
            input = input.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);   // NCHW shape, NHWC strides
        var output = model.call(input);
        if (_twin is not null)
            output = new ModelOutput(output.Reconstruction.to(ScalarType.Float32), output.Posterior.ToFloat32(), output.Z);
        var objective = model.Objective(output, x, new LossContext(klWeight, Config.FreeBits, Step, Training: true));

        _optimizer.ZeroGrad();
        _twinFlat?.Grads.zero_();
        objective.Loss.backward();
        if (_twinFlat is not null)
            CopyTwinGradients();
        var gradNorm = _optimizer.ClipGradNorm(Config.GradClip);
        var values = stack([objective.Loss.detach(), .. objective.Terms.Select(t => t.Value.detach().to(ScalarType.Float32)), gradNorm.to(ScalarType.Float32)]);
        var names = objective.Terms.Select(t => t.Name).ToArray();

        float[]? host = null;
        if (checkFirst)
        {
            host = values.cpu().data<float>().ToArray();
            if (!float.IsFinite(host[0]) || !float.IsFinite(host[^1]))
                return new PendingStep(Step + 1, lr, klWeight, names, values.DetachFromDisposeScope()) { Host = host };   // not applied
        }

        _optimizer.Step(lr);
        RefreshTwin();
        Step++;
        return new PendingStep(Step, lr, klWeight, names, values.DetachFromDisposeScope()) { Host = host };   // owned by the caller
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
        if (steps.All(s => s.Host is not null))
            host = steps.SelectMany(s => s.Host!).ToArray();
        else
            using (var scope = NewDisposeScope())
                host = cat(steps.Select(s => s.Values).ToArray()).cpu().data<float>().ToArray();
        var result = new List<StepMetrics>(steps.Count);
        int offset = 0;
        foreach (var step in steps)
        {
            var values = host.AsSpan(offset, step.Terms.Count + 2);
            offset += values.Length;
            if (!float.IsFinite(values[0]) || !float.IsFinite(values[^1]))
            {
                divergence = Diverged(step.Step, values[0], values[^1]);
                break;
            }
            result.Add(Metrics(step, values));
        }
        return result;
    }

    /// <summary>A step's host numbers: values = loss, the named terms, gradient norm.</summary>
    private static StepMetrics Metrics(PendingStep s, ReadOnlySpan<float> values)
    {
        var named = new Dictionary<string, double>(s.Terms.Count + 5) { [MetricNames.Loss] = values[0] };
        for (int i = 0; i < s.Terms.Count; i++) named[s.Terms[i]] = values[i + 1];
        MetricNames.AddDerived(named);
        named[MetricNames.KlWeight] = s.KlWeight;
        named[MetricNames.LearningRate] = s.LearningRate;
        named[MetricNames.GradNorm] = values[^1];
        return new StepMetrics(s.Step, named);
    }

    private DivergedException Diverged(long step, double loss, double gradNorm) => new(
        $"Training diverged at step {step}: the loss is {loss} (gradient norm {gradNorm}). " +
        $"Lower the learning rate ({Settings.Train.LearningRate}, now {Config.LearningRate}) or the KL weight ({Settings.Train.KlWeight}, now {Config.KlWeight}).");

    /// <summary>
    /// Metrics of a batch without gradients, in evaluation mode (running BatchNorm statistics, z = mu), added to
    /// <paramref name="sums"/>. The caller restores training mode (the next <see cref="BatchUpdate"/> does).
    /// </summary>
    public void BatchMetrics(Tensor x, MetricSums sums)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Model.eval();
        var objective = Model.Objective(Model.call(x), x, new LossContext(Config.KlWeight, 0, Step, Training: false));
        var host = stack([objective.Loss, .. objective.Terms.Select(t => t.Value)]).to(float64).cpu().data<double>().ToArray();
        sums.Add(x.shape[0], [MetricNames.Loss, .. objective.Terms.Select(t => t.Name)], host);
    }

    /// <summary>Metrics of a whole split with <see cref="BatchMetrics"/>, in batches of <paramref name="batchSize"/>.</summary>
    public EvalMetrics Evaluate(Data.DecodedImages images, int batchSize, Device device)
    {
        var sums = new MetricSums();
        for (int start = 0; start < images.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            BatchMetrics(DecodedImages.ToModelInput(images.Pixels.narrow(0, start, Math.Min(batchSize, images.Count - start)), device), sums);
        }
        return sums.Result();
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

    /// <summary>Restores what <see cref="SaveState"/> wrote, in the same layout.</summary>
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

    private static HashSet<string> NormModuleNames(VaeModel model) =>
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

    private (VaeModel, FlatParameters) BuildTwin(VaeModel master, HashSet<string> normModules, Device device, bool channelsLast)
    {
        var twin = ModelFactory.Create(master.Config);
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

    /// <inheritdoc/>
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

/// <summary>Running sums of named batch means over a split, weighted by batch size; split means come out at the end.</summary>
public sealed class MetricSums
{
    private readonly Dictionary<string, double> _sums = new();
    private readonly List<string> _order = new();

    /// <summary>Images added so far.</summary>
    public long Images { get; private set; }

    /// <summary>Adds one batch: <paramref name="means"/>[i] is the batch mean of <paramref name="names"/>[i].</summary>
    public void Add(long images, IReadOnlyList<string> names, IReadOnlyList<double> means)
    {
        Images += images;
        for (int i = 0; i < names.Count; i++)
        {
            if (!_sums.ContainsKey(names[i])) _order.Add(names[i]);
            _sums[names[i]] = _sums.GetValueOrDefault(names[i]) + means[i] * images;
        }
    }

    /// <summary>The split's means by name, with psnr from the mean per-pixel mse.</summary>
    public EvalMetrics Result()
    {
        if (Images == 0) throw new InvalidOperationException("no images were evaluated");
        var values = _order.ToDictionary(name => name, name => _sums[name] / Images);
        MetricNames.AddDerived(values);
        return new EvalMetrics(values, Images);
    }
}

/// <summary>Split-level means by name (<see cref="MetricNames"/>): loss and the objective's terms per image, mse per
/// pixel, psnr (dB) from that mse.</summary>
public sealed record EvalMetrics(IReadOnlyDictionary<string, double> Values, long Images)
{
    /// <summary>Loss per image.</summary>
    public double Loss => Values[MetricNames.Loss];
    /// <summary>Reconstruction term per image (0 when the objective has none).</summary>
    public double Reconstruction => Values.GetValueOrDefault(MetricNames.Reconstruction);
    /// <summary>0 for a model without a KL term.</summary>
    public double Kl => Values.GetValueOrDefault(MetricNames.Kl);
    /// <summary>Mean per-pixel squared error on the [0, 1] scale.</summary>
    public double Mse => Values.GetValueOrDefault(MetricNames.Mse);
    /// <summary>dB, from <see cref="Mse"/>.</summary>
    public double Psnr => Values.GetValueOrDefault(MetricNames.Psnr);
}
