using TorchSharp;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// The contract every model family implements, and what the trainer, checkpoints, evaluation, sampling, sweeps, the
/// server and the reports talk to: encode an image batch into a <see cref="Posterior"/> over flat codes (B, z),
/// decode codes into images in [0, 1], sample the prior, and state the objective. Weights and buffers are the
/// module's own (saved and loaded by name); <see cref="Config"/> is enough to rebuild the module
/// (<see cref="ModelFactory.Create"/>), so a checkpoint describes itself.
/// </summary>
/// <remarks>
/// A new family is one class deriving from this plus an <see cref="IModelFamily"/> registered with
/// <see cref="ModelFactory.Register"/>. The defaults give the lab's VAE objective: Σ_pixels (x − x̂)² per image plus
/// kl_weight times each regulariser the posterior names, a N(0, I) prior, and a Gaussian decoder likelihood.
/// </remarks>
public abstract class VaeModel : nn.Module<Tensor, ModelOutput>
{
    /// <param name="name">The module's name (shown by <c>vae info</c>).</param>
    /// <param name="config">Validated architecture; <see cref="ModelConfig.Latent"/> is the code size z.</param>
    protected VaeModel(string name, ModelConfig config) : base(name)
    {
        Config = config;
    }

    /// <summary>Everything needed to build this module again (kind, shape, family options).</summary>
    public ModelConfig Config { get; }

    /// <summary>Size z of a flat code.</summary>
    public int Latent => Config.Latent;

    /// <summary>Whether the posterior is a distribution (a VAE) rather than a point (an AE): decides whether KL-style
    /// statistics mean anything.</summary>
    public abstract bool IsVariational { get; }

    /// <summary>Number of trainable parameters (running statistics excluded).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>(B, C, s, s) in [0, 1] → q(z|x) over (B, z).</summary>
    public abstract Posterior Encode(Tensor x);

    /// <summary>(B, z) → (B, C, s, s) in [0, 1].</summary>
    public abstract Tensor Decode(Tensor z);

    /// <summary>
    /// Source of the posterior noise in training; null = libtorch's global generator of the model's device. The
    /// trainer seeds it per step, so a resumed run draws the same noise.
    /// </summary>
    public Generator? Noise { get; set; }

    /// <summary>n codes (n, z) from the prior at <paramref name="temperature"/>, on <paramref name="device"/>. Default: N(0, T²·I)
    /// drawn on the CPU from <paramref name="generator"/> (TorchSharp's generators are CPU-only).</summary>
    public virtual Tensor SamplePrior(long n, double temperature, Generator? generator, Device device) =>
        randn([n, Latent], generator: generator).mul_(temperature).to(device);

    /// <summary>
    /// The batch objective. Default: per image Σ_pixels (x − x̂)² + kl_weight · Σ regularisers, averaged over the
    /// batch; free bits (Kingma et al. 2016, §C.8) floor each latent dimension's batch-mean KL at F nats in the loss.
    /// Reports reconstruction, each regulariser and the per-pixel MSE.
    /// </summary>
    public virtual Objective Objective(ModelOutput output, Tensor x, LossContext context)
    {
        var (reconstruction, mse, extra) = ReconstructionTerm(output, x, context);        // (B), (), named scalars
        var terms = new List<(string, Tensor)> { (MetricNames.Reconstruction, reconstruction.mean()) };
        var regularisers = output.Posterior.Regularisers();
        Tensor loss;
        if (regularisers.Count == 0)
        {
            loss = terms[0].Item2;
        }
        else if (context.FreeBits > 0 && output.Posterior is GaussianPosterior gaussian)
        {
            var floored = gaussian.KlPerDimension().mean([0]).clamp_min(context.FreeBits).sum();   // Σ_z max(F, mean_B KL_z)
            loss = reconstruction.mean() + context.KlWeight * floored;
            terms.AddRange(regularisers.Select(r => (r.Name, r.PerImage.mean())));
        }
        else
        {
            var perImage = reconstruction;
            foreach (var (_, value) in regularisers) perImage = perImage + context.KlWeight * value;
            loss = perImage.mean();
            terms.AddRange(regularisers.Select(r => (r.Name, r.PerImage.mean())));
        }
        terms.Add((MetricNames.Mse, mse));
        terms.AddRange(extra);
        return new Objective(loss, terms);
    }

    /// <summary>
    /// The decoder's term of <see cref="Objective"/>, per image (B), with the per-pixel MSE to report (a detached
    /// scalar) and any numbers of the family's own. Default: Σ_pixels (x − x̂)². A family with another likelihood
    /// (σ-VAE's Gaussian NLL) overrides this alone; the KL, free bits and the loss stay the one implementation here.
    /// </summary>
    protected virtual (Tensor PerImage, Tensor Mse, IReadOnlyList<(string Name, Tensor Value)> Extra) ReconstructionTerm(
        ModelOutput output, Tensor x, LossContext context)
    {
        var squared = Losses.SquaredErrorPerImage(output.Reconstruction, x);              // (B)
        return (squared, squared.mean().detach() / PixelsPerImage(x), []);
    }

    /// <summary>
    /// log p(x | x̂) per image (B) in nats, for likelihood evaluation. Default: a Gaussian decoder N(x̂, σ²·I) with the
    /// evaluator's <paramref name="variance"/>; a family with its own decoder variance (σ-VAE) overrides this.
    /// </summary>
    public virtual Tensor LogLikelihood(Tensor reconstruction, Tensor x, double variance)
    {
        double dims = PixelsPerImage(x);
        var squared = (reconstruction - x).square().flatten(1).sum(1).to_type(ScalarType.Float64);
        return -0.5 * dims * Math.Log(2 * Math.PI * variance) - squared / (2 * variance);
    }

    /// <summary>The decoder variance <see cref="LogLikelihood"/> uses, when the model has its own; null = the evaluator's.</summary>
    public virtual double? DecoderVariance => null;

    /// <summary>
    /// Data-dependent initialisation: called once by the trainer, on the fp32 master model under no_grad, with the
    /// first training batch (B, C, s, s) of a new run, before its first optimizer step; never on resume, so a resumed
    /// run continues from the weights it saved. Default: nothing. σ-VAE with a learned σ starts log σ at the batch
    /// optimum here.
    /// </summary>
    public virtual void InitialiseFromBatch(Tensor x) { }

    /// <summary>
    /// Multiplier of the learning rate for the parameter named <paramref name="parameterName"/> (its state_dict
    /// name): lets a family give one scalar its own step size (σ-VAE's learned log σ). Default 1 for every parameter.
    /// </summary>
    public virtual double StepSizeScale(string parameterName) => 1.0;

    /// <summary>
    /// The state_dict name of the decoder's output weight: where the adaptive weight of the adversarial term compares
    /// the gradient norms of the reconstruction loss and the generator loss (VQGAN's "last layer"). Default: the last
    /// registered parameter with two or more dimensions, which is the decoder's output conv when the decoder is
    /// registered last (every built-in family, and the usual layout). A family that registers something after its
    /// decoder overrides this.
    /// </summary>
    public virtual string OutputWeightName =>
        named_parameters().LastOrDefault(p => p.parameter.dim() > 1).name
        ?? throw new InvalidOperationException($"{GetType().Name} has no weight with two or more dimensions; override OutputWeightName");

    /// <summary>
    /// The family's own work at an epoch end (the VQ-VAE fits its code prior here), called by the training loop
    /// after validation and before the epoch's grids, checkpoints and outputs. Default: nothing.
    /// </summary>
    public virtual void EpochEnded(TrainingImages images) { }

    /// <summary>
    /// The family's own work when a run is interrupted, before "last" is saved (a VQ-VAE that has not fitted its
    /// prior yet fits it, so the checkpoint can sample). Default: nothing.
    /// </summary>
    public virtual void RunInterrupted(TrainingImages images) { }

    /// <summary>Numbers about the codes of a whole evaluated set (<paramref name="codes"/>: the posterior modes, (N, z)
    /// float64 on the CPU) that batch means cannot give, e.g. a VQ-VAE's code usage; <c>vae eval</c> reports them. Default: none.</summary>
    public virtual IReadOnlyList<CodeStatistic> CodeStatistics(Tensor codes) => [];

    /// <summary>Refuses an operation a family cannot do, with a message; null when it can.</summary>
    public virtual string? Unsupported(ModelOperation operation) => null;

    /// <summary>Training mode draws from the posterior; evaluation mode decodes its mode.</summary>
    public override ModelOutput forward(Tensor x)
    {
        var posterior = Encode(x);
        var z = training ? posterior.Sample(Noise) : posterior.Mode;
        return new ModelOutput(Decode(z), posterior, z);
    }

    /// <summary>C·H·W of a batch (B, C, H, W).</summary>
    protected static long PixelsPerImage(Tensor x) => x.shape[1] * x.shape[2] * x.shape[3];
}

/// <summary>Operations a command performs on a model, for <see cref="VaeModel.Unsupported"/>.</summary>
public enum ModelOperation
{
    /// <summary>Decode points on the line between two images' codes.</summary>
    Interpolate,
    /// <summary>Decode one code with single latent dimensions swept.</summary>
    Traverse,
    /// <summary>Decode codes drawn from the prior.</summary>
    Sample,
}

/// <summary>What a family's training hooks (<see cref="VaeModel.EpochEnded"/>, <see cref="VaeModel.RunInterrupted"/>)
/// get: the run's training images (uint8, on <paramref name="Device"/> or the host), the batch size to pass over them
/// in and the device the model is on.</summary>
public sealed record TrainingImages(Data.DecodedImages Images, int BatchSize, TorchSharp.torch.Device Device);
