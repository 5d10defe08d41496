using VaeKit.Data;
using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// The training step: <see cref="BatchUpdate"/> (forward with a posterior sample, objective, backward, clipping, one
/// update of each optimized module in order: the autoencoder, then the discriminator when the run has one). Owns the
/// modules' optimizer state (<see cref="OptimizedModule"/>), the step counter and the noise seeding; knows nothing
/// about files, epochs or datasets. Its neighbours each do one thing: <see cref="StepReadback"/> reads steps back and
/// catches divergence, <see cref="ValidationPass"/> measures a split without gradients, <see cref="Bf16Twin"/> is the
/// bf16 compute copy, <see cref="Optimizers"/> builds the autoencoder's optimizer, and <see cref="ReconstructionCritics"/>
/// brings the discriminator and the perceptual term.
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
    private readonly OptimizedModule _autoencoder;
    private readonly ReconstructionCritics? _critics;   // discriminator, perceptual network; null = neither
    private readonly Tensor? _outputWeight;            // the decoder's last weight in the computing model (adaptive weight)
    private readonly Generator _noise;                 // CPU noise; on CUDA the device's default generator is seeded instead
    private readonly bool _onGpu;
    private readonly KlSchedule _klSchedule;           // train.kl_schedule, parsed once
    private bool _initialised;                         // VaeModel.InitialiseFromBatch has had its one call (or the run resumed)

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    /// <param name="precision">Arithmetic of the forward and backward passes.</param>
    /// <param name="channelsLast">bf16 only: NHWC conv weights and activations in the twin (cuDNN's tensor-core
    /// layout); null = on for CUDA, off for CPU.</param>
    /// <param name="optimizer">Builds the autoencoder's optimizer over its flat buffer; null = <see cref="Optimizers.AdamW"/>.</param>
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
        ChannelsLast = precision == Precision.Bf16 && (channelsLast ?? _onGpu);

        var factory = optimizer ?? Optimizers.AdamW;
        _autoencoder = new OptimizedModule("autoencoder", model, () => ModelFactory.Create(model.Config), flat => factory(flat, model, Config),
                                           step => LearningRate.At(Config, step, TotalSteps), Config.GradClip, precision, ChannelsLast);
        if (_autoencoder.Twin?.Model is VaeModel twin) twin.Noise = _onGpu ? null : _noise;
        try
        {
            _critics = ReconstructionCritics.Create(Config, model.Config, device, precision, ChannelsLast);
            if (_critics?.Discriminator is not null && Config.AdversarialWeight > 0)
            {
                string name = model.OutputWeightName;
                _outputWeight = _autoencoder.Compute.named_parameters().FirstOrDefault(p => p.name == name).parameter
                                ?? throw new InvalidOperationException($"{model.GetType().Name}.OutputWeightName names '{name}', which is not one of its parameters");
            }
        }
        catch
        {
            _autoencoder.Dispose();
            throw;
        }
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
    public long LowPrecisionCount => _autoencoder.LowPrecisionCount;

    /// <summary>Issue 13: the bf16 compute twin (Precision.Bf16 only; null otherwise), weights current after every
    /// step. Its input is bf16 (channels-last strides when <see cref="ChannelsLast"/>); used by the bench.</summary>
    internal VaeModel? TwinModel => _autoencoder.Twin?.Model as VaeModel;

    /// <summary>All parameters of the autoencoder as one buffer (tests and tools; do not resize).</summary>
    internal FlatParameters Parameters => _autoencoder.Parameters;

    /// <summary>The modules this trainer updates, in the order of each step and of a checkpoint.</summary>
    internal IReadOnlyList<OptimizedModule> Modules =>
        _critics?.Discriminator is OptimizedModule d ? [_autoencoder, d] : [_autoencoder];

    /// <summary>The discriminator (a run with an adversarial or feature-matching term), else null.</summary>
    public nn.Module? Discriminator => _critics?.Discriminator?.Module;

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
    /// Checked, the numbers are read back before the optimizer steps, and a non-finite step is not applied to any
    /// module (the step counter does not move; <c>Resolve</c> reports it). The caller owns (disposes) the result.
    /// </summary>
    public PendingStep BatchUpdateDeferred(Tensor x, bool checkFirst = false)
    {
        using var scope = NewDisposeScope();
        if (Step == 0 && !_initialised)
        {
            using (no_grad()) Model.InitialiseFromBatch(x);
            _autoencoder.Twin?.Refresh(_autoencoder.Parameters);
        }
        _initialised = true;
        double lr = _autoencoder.LearningRate(Step);
        double klWeight = _klSchedule.At(Config.KlWeight, Step, TotalSteps);   // effective: after train.kl_schedule
        var model = (VaeModel)_autoencoder.Compute;
        model.train();
        _critics?.Discriminator?.Compute.train();
        SeedNoise();

        var output = model.call(_autoencoder.Input(x));
        if (_autoencoder.Twin is not null) output = Bf16Twin.ToFloat32(output);
        var objective = model.Objective(output, x, new LossContext(klWeight, Config.FreeBits, Step, Training: true));
        var loss = objective.Loss;                        // reported as "loss": the family's objective, as validation measures it
        var terms = objective.Terms.ToList();
        if (_critics is not null)
        {
            var (extra, reported) = _critics.Generator(x, output.Reconstruction, objective.Loss, _outputWeight!, Step);
            loss = loss + extra;
            terms.AddRange(reported);
        }

        _autoencoder.ZeroGrad();
        loss.backward();
        var gradNorm = _autoencoder.FinishBackward();
        if (_critics is not null)
            terms.AddRange(_critics.TrainDiscriminator(x, output.Reconstruction, Step));
        var values = stack([objective.Loss.detach(), .. terms.Select(t => t.Item2.detach().to(ScalarType.Float32)), gradNorm.to(ScalarType.Float32)]);
        var names = terms.Select(t => t.Item1).ToArray();

        float[]? host = null;
        if (checkFirst)
        {
            host = values.cpu().data<float>().ToArray();
            if (!host.All(float.IsFinite))
                return new PendingStep(Step + 1, lr, klWeight, names, values.DetachFromDisposeScope()) { Host = host };   // not applied
        }

        _autoencoder.Step(Step);                          // the autoencoder's update, then the discriminator's
        _critics?.Step(Step);
        Step++;
        return new PendingStep(Step, lr, klWeight, names, values.DetachFromDisposeScope()) { Host = host };   // owned by the caller
    }

    /// <summary>
    /// Step, then each optimized module's weights, buffers and optimizer moments in order (<see cref="Modules"/>):
    /// everything a bit-exact resume needs (the noise is a function of the step). The autoencoder comes first, so
    /// <see cref="Checkpoint.LoadModel"/> reads the model right after the step.
    /// </summary>
    public void SaveState(BinaryWriter writer)
    {
        writer.Write(Step);
        foreach (var module in Modules) module.Save(writer);
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote, in the same layout.</summary>
    public void LoadState(BinaryReader reader)
    {
        Step = reader.ReadInt64();
        foreach (var module in Modules) module.Load(reader);
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

    /// <inheritdoc/>
    public void Dispose()
    {
        Model.Noise = null;
        if (_autoencoder.Twin?.Model is VaeModel twin) twin.Noise = null;
        _critics?.Dispose();
        _autoencoder.Dispose();
        _noise.Dispose();
    }
}
