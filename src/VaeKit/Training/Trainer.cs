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
/// The lab's two operations on one model: <see cref="BatchUpdate"/> (one optimizer step) and
/// <see cref="BatchMetrics"/> (a no-grad metrics pass). Owns the AdamW state and the step counter; knows nothing
/// about files, epochs or datasets.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly AdamW _optimizer;
    private readonly Parameter[] _parameters;
    private readonly Generator _noise;

    /// <param name="model">Already on its device: the optimizer binds to these parameter tensors.</param>
    /// <param name="totalSteps">Length of the run in optimizer steps; the cosine schedule ends there.</param>
    public Trainer(AutoEncoder model, TrainConfig config, long totalSteps)
    {
        Model = model;
        Config = config.Validate();
        TotalSteps = totalSteps;
        _parameters = model.parameters().ToArray();
        _noise = new Generator((ulong)config.Seed + 0x5EEDUL, _parameters[0].device);
        model.Noise = _noise;

        // Decoupled weight decay on conv/linear weights only: decaying norm scales and biases toward zero fights
        // normalisation and buys nothing. Both groups keep TorchSharp's parameter order, which the optimizer state
        // file depends on.
        var decay = _parameters.Where(p => p.dim() > 1).ToArray();
        var noDecay = _parameters.Where(p => p.dim() <= 1).ToArray();
        _optimizer = optim.AdamW(
            [
                new AdamW.ParamGroup(decay, lr: config.LearningRate, beta1: config.Beta1, beta2: config.Beta2, weight_decay: config.WeightDecay),
                new AdamW.ParamGroup(noDecay, lr: config.LearningRate, beta1: config.Beta1, beta2: config.Beta2, weight_decay: 0),
            ],
            lr: config.LearningRate, beta1: config.Beta1, beta2: config.Beta2, weight_decay: config.WeightDecay);
    }

    public AutoEncoder Model { get; }
    public TrainConfig Config { get; }
    public long TotalSteps { get; }

    /// <summary>Optimizer steps taken so far (restored by <see cref="LoadState"/>).</summary>
    public long Step { get; private set; }

    /// <summary>
    /// One training step on a batch x (B, C, s, s) in [0, 1]: forward (posterior sample), loss, backward, gradient
    /// clipping, AdamW. Reads three scalars back to the host, which is also where a NaN/Inf loss is caught — before
    /// the optimizer step, so the weights in memory stay finite.
    /// </summary>
    /// <exception cref="DivergedException">the loss or the gradient norm is not finite.</exception>
    public StepMetrics BatchUpdate(Tensor x)
    {
        using var scope = NewDisposeScope();
        Model.train();
        double lr = LearningRate.At(Config, Step, TotalSteps);
        foreach (var group in _optimizer.ParamGroups)
            group.LearningRate = lr;

        double klWeight = KlSchedule.At(Config, Step, TotalSteps);   // effective: after --kl-schedule
        var output = Model.call(x);
        var terms = Losses.Compute(output, x, klWeight, Config.FreeBits);
        Model.zero_grad();
        terms.Loss.backward();

        // clip_grad_norm_ returns the total norm before clipping; with max_norm = ∞ it only measures.
        double gradNorm = nn.utils.clip_grad_norm_(_parameters, Config.GradClip > 0 ? Config.GradClip : double.PositiveInfinity);
        var host = stack([terms.Loss, terms.Reconstruction, terms.Kl]).cpu().data<float>().ToArray();
        if (!double.IsFinite(host[0]) || !double.IsFinite(gradNorm))
            throw new DivergedException(
                $"Training diverged at step {Step + 1}: the loss is {host[0]} (gradient norm {gradNorm}). " +
                $"Lower the learning rate (--lr, now {Config.LearningRate}) or the KL weight (--kl-weight, now {Config.KlWeight}).");

        _optimizer.step();
        Step++;
        double mse = host[1] / PixelsPerImage(x);
        return new StepMetrics(Step, host[0], host[1], host[2], mse, Losses.Psnr(mse), klWeight, lr, gradNorm);
    }

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
    /// Step, model weights and buffers, optimizer moments and the noise generator: everything a bit-exact resume
    /// needs. The layout is step (int64), then the model (also what <see cref="Checkpoint.LoadModel"/> reads), then the rest.
    /// </summary>
    public void SaveState(BinaryWriter writer)
    {
        writer.Write(Step);
        Model.save(writer);
        _optimizer.save_state_dict(writer);
        using var state = _noise.get_state();
        var bytes = state.bytes.ToArray();
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    public void LoadState(BinaryReader reader)
    {
        Step = reader.ReadInt64();
        Model.load(reader, strict: true);
        _optimizer.load_state_dict(reader);
        int length = reader.ReadInt32();
        if (length is <= 0 or > 1 << 20) throw new InvalidDataException($"implausible generator state length {length}");
        using var state = tensor(reader.ReadBytes(length), ScalarType.Byte);
        _noise.set_state(state);
    }

    private static long PixelsPerImage(Tensor x) => x.shape[1] * x.shape[2] * x.shape[3];

    public void Dispose()
    {
        Model.Noise = null;
        _noise.Dispose();
        _optimizer.Dispose();
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
