using VaeKit.Data;
using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// The training step on one model: <see cref="BatchUpdate"/> (forward with a posterior sample, objective, backward,
/// clipping, one optimizer step). Owns the optimizer state, the step counter and the noise seeding; knows nothing
/// about files, epochs or datasets. Its neighbours each do one thing: <see cref="StepReadback"/> reads steps back and
/// catches divergence, <see cref="ValidationPass"/> measures a split without gradients, <see cref="Bf16Twin"/> is the
/// bf16 compute copy, and <see cref="Optimizers"/> builds the optimizer.
/// </summary>
/// <remarks>
/// The parameters live in one flat buffer (<see cref="FlatParameters"/>) updated by an <see cref="IFlatOptimizer"/>
/// (AdamW), so the optimizer and gradient clipping cost a few kernels per step, not several per tensor.
/// With <see cref="Precision.Bf16"/> the forward and backward passes run on the <see cref="Bf16Twin"/> and the losses
/// are computed in fp32; the optimizer updates the fp32 master weights, which are what checkpoints, validation and
/// sampling use.
/// </remarks>
public sealed class Trainer : IDisposable
{
    private readonly FlatParameters _flat;
    private readonly IFlatOptimizer _optimizer;
    private readonly Generator _noise;            // CPU noise; on CUDA the device's default generator is seeded instead
    private readonly bool _onGpu;
    private readonly KlSchedule _klSchedule;      // train.kl_schedule, parsed once
    private readonly Bf16Twin? _twin;             // bf16 compute copy (Precision.Bf16 only)
    private bool _initialised;                    // VaeModel.InitialiseFromBatch has had its one call (or the run resumed)

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    /// <param name="precision">Arithmetic of the forward and backward passes.</param>
    /// <param name="channelsLast">bf16 only: NHWC conv weights and activations in the twin (cuDNN's tensor-core
    /// layout); null = on for CUDA, off for CPU.</param>
    /// <param name="optimizer">Builds the optimizer over the flat buffer; null = <see cref="Optimizers.AdamW"/>.</param>
    internal Trainer(VaeModel model, TrainConfig config, long totalSteps, Precision precision, bool? channelsLast, Optimizers.Factory? optimizer)
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
        var low = named.Where(p => !normModules.Contains(Bf16Twin.OwnerOf(p.name))).ToList();
        var norm = named.Where(p => normModules.Contains(Bf16Twin.OwnerOf(p.name))).ToList();
        _flat = new FlatParameters([.. low, .. norm]);
        LowPrecisionCount = low.Sum(p => p.parameter.numel());
        _optimizer = (optimizer ?? Optimizers.AdamW)(_flat, model, Config);

        ChannelsLast = precision == Precision.Bf16 && (channelsLast ?? _onGpu);
        if (precision == Precision.Bf16)
            _twin = Bf16Twin.Build(model, normModules, LowPrecisionCount, device, ChannelsLast, _onGpu ? null : _noise);
        _twin?.Refresh(_flat);
    }

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="config">The optimisation settings (validated here).</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    /// <param name="precision">Arithmetic of the forward and backward passes.</param>
    /// <param name="channelsLast">bf16 only: NHWC conv weights and activations in the twin (cuDNN's tensor-core
    /// layout); null = on for CUDA, off for CPU.</param>
    public Trainer(VaeModel model, TrainConfig config, long totalSteps, Precision precision = Precision.Fp32, bool? channelsLast = null)
        : this(model, config, totalSteps, precision, channelsLast, optimizer: null)
    {
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
    internal VaeModel? TwinModel => _twin?.Model;

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
        return StepReadback.Resolve([pending], Config)[0];
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
            _twin?.Refresh(_flat);
        }
        _initialised = true;
        double lr = LearningRate.At(Config, Step, TotalSteps);
        double klWeight = _klSchedule.At(Config.KlWeight, Step, TotalSteps);   // effective: after train.kl_schedule
        var model = _twin?.Model ?? Model;
        model.train();
        SeedNoise();

        var output = _twin is null ? model.call(x) : Bf16Twin.ToFloat32(model.call(_twin.Input(x)));
        var objective = model.Objective(output, x, new LossContext(klWeight, Config.FreeBits, Step, Training: true));

        _optimizer.ZeroGrad();
        _twin?.ZeroGrad();
        objective.Loss.backward();
        _twin?.CopyGradients(_flat);
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
        _twin?.Refresh(_flat);
        Step++;
        return new PendingStep(Step, lr, klWeight, names, values.DetachFromDisposeScope()) { Host = host };   // owned by the caller
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
        _twin?.Refresh(_flat);
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

    /// <inheritdoc/>
    public void Dispose()
    {
        Model.Noise = null;
        _twin?.Dispose();
        _noise.Dispose();
        _optimizer.Dispose();
        _flat.Dispose();
    }
}

