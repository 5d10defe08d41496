using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using VaeKit.Layers;
using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>How a σ-VAE chooses its decoder's standard deviation σ (<c>--model-option sigma=optimal|learned</c>).</summary>
public enum SigmaMode
{
    /// <summary>The batch's maximum-likelihood σ, in closed form: σ*² = the batch's mean squared error. No parameter.</summary>
    Optimal,
    /// <summary>One learned scalar log σ, trained with the rest of the model.</summary>
    Learned,
}

/// <summary>The family options of sigma-vae, as stored in <c>config.json</c> under <c>model.options</c>.</summary>
public sealed record SigmaVaeOptions
{
    /// <summary>"optimal" (default) or "learned": see <see cref="SigmaMode"/>.</summary>
    public string Sigma { get; init; } = "optimal";
}

/// <summary>
/// σ-VAE: the lab's VAE (same residual encoder, project_latent and decoder, same weight names) with a calibrated
/// Gaussian decoder p(x|z) = N(x̂(z), σ²·I) whose single shared σ is fitted rather than fixed (Rybkin, Daniilidis and
/// Levine 2021, "Simple and Effective VAE Training with Calibrated Decoders", ICML).
/// </summary>
/// <remarks>
/// <para>
/// The lab's VAE minimises Σ(x − x̂)² + β·KL: a Gaussian decoder with a fixed σ² = ½ whose balance between
/// reconstruction and KL is set by hand through β (kl_weight). σ-VAE instead maximises the ELBO with the decoder's
/// variance as a free quantity. Per image, with D = C·H·W pixels, the reconstruction term is the Gaussian negative
/// log-likelihood (the paper's Eq. 1 with a Gaussian p(x|z))
/// <code>
///   −log p(x|z) = Σ_pixels [ (x − x̂)² / (2σ²) + log σ + ½·log 2π ]
///              = ‖x − x̂‖² / (2σ²) + D·log σ + (D/2)·log 2π
/// </code>
/// and the loss is the batch mean of that plus kl_weight · KL(q(z|x) ‖ N(0, I)), kl_weight = 1 by default: the
/// negative ELBO itself. σ acts as the temperature of the reconstruction term, so fitting it balances the two terms
/// without a tuned β (the paper's §3).
/// </para>
/// <para>
/// <b>Optimal σ</b> (the paper's §4, Eq. 5, "σ-VAE"): for a fixed x̂ the NLL above is minimised over one σ shared by
/// all pixels of the batch at σ*² = (1/(B·D)) Σ_batch Σ_pixels (x − x̂)², the batch's mean squared error. Substituted
/// back, the reconstruction term becomes (D/2)·(1 + log 2π·MSE): a log-MSE loss. σ* is computed in closed form each
/// step (no parameter) and treated as a constant in the backward pass; by the envelope theorem that is the same
/// gradient as differentiating through it, because ∂NLL/∂σ = 0 at σ*. As in the paper's implementation, log σ is
/// softly clamped from below, log σ ← m + softplus(log σ − m) with m = −6 (<see cref="MinLogSigma"/>), so a perfect
/// batch cannot drive the loss to −∞.
/// </para>
/// <para>
/// <b>Learned σ</b> (the paper's §3, the "calibrated decoder" baseline with a learned shared variance): log σ is one
/// scalar parameter <c>decoder_sigma.log_sigma</c>, softly clamped the same way and trained by the same objective. A
/// new module starts at 0 (σ = 1); training starts it at the first batch's σ* (<see cref="InitialiseFromBatch"/>) and
/// gives it <see cref="LearnedSigmaStepScale"/> times the learning rate, so it stays near the batch optimum from the
/// first steps on.
/// </para>
/// <para>
/// <b>Likelihood evaluation</b> (<c>vae eval</c>) measures the ELBO and the importance-weighted NLL under the model's
/// own σ: <see cref="DecoderVariance"/>. Learned: exp(2·log σ). Optimal: σ* belongs to a batch, so the model keeps an
/// exponential moving average of the training batches' σ*² (decay <see cref="EmaDecay"/>, bias-corrected as Adam's
/// moments are) in the buffers <c>mse_ema</c> and <c>ema_weight</c>. They are updated only by training steps, by a
/// deterministic function of the batch, and saved with the weights, so an interrupted and resumed run ends with the
/// same σ as one that never stopped.
/// </para>
/// Reported terms: reconstruction (the NLL above, nats per image), kl, mse (per pixel) and sigma (the σ used).
/// </remarks>
public sealed class SigmaVae : VaeModel
{
    /// <summary>The floor m of the soft clamp log σ ← m + softplus(log σ − m): σ ≥ e⁻⁶ ≈ 0.0025 on the [0, 1] scale.</summary>
    public const double MinLogSigma = -6;

    /// <summary>Per-step decay of the running σ*² estimate used by optimal-σ models in evaluation.</summary>
    public const double EmaDecay = 0.99;

    /// <summary>The name under which σ is reported.</summary>
    public const string SigmaTerm = "sigma";

    [ComponentName(Name = "encoder")] private readonly Encoder _encoder;
    [ComponentName(Name = "project_latent")] private readonly Linear _projectLatent;
    [ComponentName(Name = "decoder")] private readonly Decoder _decoder;
    [ComponentName(Name = "decoder_sigma")] private readonly DecoderSigma? _sigma;   // learned only: log σ, ()
    [ComponentName(Name = "mse_ema")] private readonly Tensor? _mseEma;          // optimal only: () Σ (1−d)·d^(t−i)·σ*²_i
    [ComponentName(Name = "ema_weight")] private readonly Tensor? _emaWeight;    // optimal only: () 1 − d^t (bias correction)

    /// <param name="config">A validated sigma-vae config (build through <see cref="ModelFactory.Create"/>).</param>
    public SigmaVae(ModelConfig config) : base("SigmaVAE", config)
    {
        Mode = SigmaVaeFamily.ParseMode(config.OptionsAs<SigmaVaeOptions>());
        _encoder = new Encoder(config);
        _projectLatent = nn.Linear(config.FlatFeatures, 2 * config.Latent);
        _decoder = new Decoder(config);
        if (Mode == SigmaMode.Learned)
            _sigma = new DecoderSigma();
        else
        {
            _mseEma = zeros([], dtype: ScalarType.Float32);
            _emaWeight = zeros([], dtype: ScalarType.Float32);
        }
        RegisterComponents();
    }

    /// <summary>Optimal (per batch, closed form) or learned σ.</summary>
    public SigmaMode Mode { get; }

    /// <inheritdoc/>
    public override bool IsVariational => true;

    /// <summary>(B, C, s, s) → N(mu, exp(logvar)), (B, z) each: the lab's VAE encoder.</summary>
    public override Posterior Encode(Tensor x)
    {
        var parts = _projectLatent.call(_encoder.call(x)).chunk(2, dim: 1);   // (B, z) twice
        return new GaussianPosterior(parts[0], parts[1]);
    }

    /// <summary>(B, z) → the decoder's mean x̂, (B, C, s, s) in (0, 1).</summary>
    public override Tensor Decode(Tensor z) => _decoder.call(z);

    /// <summary>
    /// The one term σ-VAE changes: per image, the Gaussian NLL of x under N(x̂, σ²·I) (see the class remarks), reported
    /// with σ. The KL, free bits and the loss are <see cref="VaeModel.Objective"/>'s. A training pass of an optimal-σ
    /// model also advances the running σ² estimate.
    /// </summary>
    protected override (Tensor PerImage, Tensor Mse, IReadOnlyList<(string Name, Tensor Value)> Extra) ReconstructionTerm(
        ModelOutput output, Tensor x, LossContext context)
    {
        var squared = (output.Reconstruction - x).square().flatten(1).sum(1);   // (B) Σ_pixels (x − x̂)²
        var mse = squared.mean() / PixelsPerImage(x);                           // () per pixel
        Tensor logSigma;
        if (Mode == SigmaMode.Learned)
        {
            logSigma = SoftClamp(_sigma!.LogSigma.to(ScalarType.Float32));
        }
        else
        {
            var optimalSquared = mse.detach();                                  // σ*² (the paper's Eq. 5)
            if (context.Training) UpdateRunningVariance(optimalSquared);
            logSigma = SoftClamp(0.5 * optimalSquared.log());
        }
        var reconstruction = GaussianNll(squared, logSigma, PixelsPerImage(x));   // (B)
        return (reconstruction, mse.detach(), [(SigmaTerm, logSigma.detach().exp())]);
    }

    /// <summary>
    /// Learned σ only: log σ starts at the first training batch's optimum, ½·log σ*² with σ*² that batch's mean squared
    /// error under the untrained model's posterior means (softly clamped as in training), instead of 0 (σ = 1, far
    /// above any image's error on the [0, 1] scale).
    /// </summary>
    public override void InitialiseFromBatch(Tensor x)
    {
        if (Mode != SigmaMode.Learned) return;
        using var scope = NewDisposeScope();
        var reconstruction = Decode(Encode(x).Mode);
        var mse = (reconstruction.to(ScalarType.Float32) - x).square().mean();
        _sigma!.LogSigma.copy_(SoftInverse(0.5 * mse.log()));
    }

    /// <summary>
    /// Learned σ only: log σ steps <see cref="LearnedSigmaStepScale"/> times the learning rate, so it follows the
    /// batch optimum as the reconstructions improve instead of trailing it by hundreds of steps.
    /// </summary>
    public override double StepSizeScale(string parameterName) =>
        Mode == SigmaMode.Learned && parameterName == LearnedSigmaName ? LearnedSigmaStepScale : 1.0;

    /// <summary>The state_dict name of the learned log σ.</summary>
    public const string LearnedSigmaName = "decoder_sigma.log_sigma";

    /// <summary>
    /// Learning-rate multiplier of the learned log σ. AdamW moves a parameter by about the learning rate per step
    /// whatever its gradient, so at the default 2e-3 an unscaled log σ needs ~1,000 steps to cross the ~2 nats between
    /// σ = 1 and a trained model's error; scaled, it tracks σ* within tens of steps (docs: "learned σ").
    /// </summary>
    public const double LearnedSigmaStepScale = 20;

    /// <summary>
    /// The σ² the likelihood is measured under: learned, exp(2·log σ); optimal, the bias-corrected running mean of the
    /// training batches' σ*² (softly clamped like σ* itself); null before any training step (the evaluator's σ²).
    /// </summary>
    public override double? DecoderVariance
    {
        get
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            if (Mode == SigmaMode.Learned) return (2 * SoftClamp(_sigma!.LogSigma.to(ScalarType.Float64))).exp().item<double>();
            double weight = _emaWeight!.to(ScalarType.Float64).item<double>();
            if (!(weight > 0)) return null;
            var running = _mseEma!.to(ScalarType.Float64) / weight;
            return (2 * SoftClamp(0.5 * running.log())).exp().item<double>();
        }
    }

    /// <summary>
    /// −log N(x | x̂, σ²·I) per image from Σ_pixels (x − x̂)² (B) and log σ (a scalar tensor): ‖x − x̂‖²/(2σ²) +
    /// D·log σ + (D/2)·log 2π, (B). The same density <see cref="VaeModel.LogLikelihood"/> evaluates with σ² given.
    /// </summary>
    public static Tensor GaussianNll(Tensor squaredError, Tensor logSigma, long pixels) =>
        squaredError * (-2 * logSigma).exp() * 0.5 + pixels * (logSigma + 0.5 * Math.Log(2 * Math.PI));

    /// <summary>The paper's soft lower clamp: m + softplus(t − m), m = <see cref="MinLogSigma"/>; ≈ t well above m.</summary>
    public static Tensor SoftClamp(Tensor logSigma) =>
        nn.functional.softplus(logSigma - MinLogSigma) + MinLogSigma;

    /// <summary>The inverse of <see cref="SoftClamp"/> for a target above the floor (a target at or below it maps to
    /// the floor's inverse limit, −∞ avoided by clamping the softplus argument).</summary>
    private static Tensor SoftInverse(Tensor clamped) =>
        (clamped - MinLogSigma).clamp_min(1e-6).expm1().log() + MinLogSigma;

    /// <summary>mse_ema ← d·mse_ema + (1 − d)·σ*², ema_weight ← d·ema_weight + (1 − d): in place, outside autograd.</summary>
    private void UpdateRunningVariance(Tensor optimalSquared)
    {
        using var noGrad = no_grad();
        _mseEma!.mul_(EmaDecay).add_(optimalSquared.to(_mseEma.dtype), alpha: 1 - EmaDecay);
        _emaWeight!.mul_(EmaDecay).add_(1 - EmaDecay);
    }
}

/// <summary>
/// The learned log σ of <see cref="SigmaVae"/>, () float32, initialised to 0. A module of its own rather than a parameter
/// on the model's root so that the trainer's bf16 compute copy converts it as it converts every other layer.
/// </summary>
internal sealed class DecoderSigma : nn.Module
{
    [ComponentName(Name = "log_sigma")] public readonly Parameter LogSigma;

    public DecoderSigma() : base(nameof(DecoderSigma))
    {
        LogSigma = nn.Parameter(zeros([], dtype: ScalarType.Float32));
        RegisterComponents();
    }
}

/// <summary>Builds <see cref="SigmaVae"/> for the kind sigma-vae; option sigma=optimal|learned.</summary>
public sealed class SigmaVaeFamily : IModelFamily
{
    /// <inheritdoc/>
    public IReadOnlyList<MetricInfo> Metrics { get; } = [new(SigmaVae.SigmaTerm, "Decoder σ (σ-VAE)")];

    /// <inheritdoc/>
    public IReadOnlyList<string> Kinds { get; } = [ModelKinds.SigmaVae];

    /// <inheritdoc/>
    public string Description =>
        "sigma-vae: the VAE with a calibrated Gaussian decoder N(x̂, σ²I), σ the batch optimum or learned " +
        "(Rybkin et al. 2021); option sigma=optimal|learned";

    /// <summary>The shared CNN's checks, then the options: only <c>sigma</c>, optimal or learned; the default is written in.</summary>
    public ModelConfig Validate(ModelConfig config)
    {
        config.ValidateConvolutional();
        if (config.Options is { } given)
            foreach (var key in given.Select(p => p.Key).Where(k => k != "sigma"))
                throw new BadInputException($"{SettingKey.ModelOption(key)} is not a sigma-vae option; its only option is sigma (optimal or learned).");
        var sigma = config.Options?["sigma"];
        if (sigma is not null && (sigma.GetValueKind() != System.Text.Json.JsonValueKind.String))
            throw new BadInputException($"{SettingKey.ModelOption("sigma")} must be optimal or learned (got {sigma.ToJsonString()}).");
        var options = config.OptionsAs<SigmaVaeOptions>();
        ParseMode(options);
        return config.WithOptions(options);
    }

    /// <inheritdoc/>
    public VaeModel Create(ModelConfig config) => new SigmaVae(config);

    internal static SigmaMode ParseMode(SigmaVaeOptions options) => options.Sigma switch
    {
        "optimal" => SigmaMode.Optimal,
        "learned" => SigmaMode.Learned,
        _ => throw new BadInputException($"{SettingKey.ModelOption("sigma")} must be optimal or learned (got '{options.Sigma}')."),
    };
}
