using TorchSharp.Modules;
using VaeKit;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace MlpVaeExample;

/// <summary>The MLP VAE of PyTorch's classic example: pixels → 400 → (mu, logvar) of z; z → 400 → pixels.</summary>
public sealed class MlpVae : VaeModel
{
    private readonly Linear _fc1, _fcMu, _fcLogVar, _fc3, _fc4;

    public MlpVae(ModelConfig config) : base("MlpVae", config)
    {
        int pixels = config.InChannels * config.ImageSize * config.ImageSize;
        int hidden = config.OptionsAs<MlpOptions>().Hidden;
        _fc1 = nn.Linear(pixels, hidden);
        _fcMu = nn.Linear(hidden, Latent);
        _fcLogVar = nn.Linear(hidden, Latent);
        _fc3 = nn.Linear(Latent, hidden);
        _fc4 = nn.Linear(hidden, pixels);
        RegisterComponents();
    }

    public override bool IsVariational => true;

    // (B, C, s, s) → N(mu, exp(logvar)) over (B, z)
    public override Posterior Encode(Tensor x)
    {
        var h = relu(_fc1.call(x.flatten(1)));
        return new GaussianPosterior(_fcMu.call(h), _fcLogVar.call(h));
    }

    // (B, z) → (B, C, s, s) in (0, 1)
    public override Tensor Decode(Tensor z) =>
        _fc4.call(relu(_fc3.call(z))).sigmoid().view(-1, Config.InChannels, Config.ImageSize, Config.ImageSize);

    /// <summary>The VAE objective plus a diagnostic of this family's own, reported but not minimised: the mean
    /// posterior σ. It reaches metrics.jsonl, TensorBoard, W&amp;B and a report.html chart by its name alone.</summary>
    public override Objective Objective(ModelOutput output, Tensor x, LossContext context)
    {
        var objective = base.Objective(output, x, context);
        if (output.Posterior is not GaussianPosterior gaussian) return objective;
        var sigma = (0.5 * gaussian.LogVar).exp().mean().detach();                     // scalar
        return objective with { Terms = [.. objective.Terms, (MlpVaeFamily.PosteriorSigma, sigma)] };
    }
}

/// <summary>The family's own setting, read from model.options (config.json) or --model-option hidden=N.</summary>
public sealed record MlpOptions
{
    public int Hidden { get; init; } = 400;
}

/// <summary>Registers "mlp-vae" with VaeKit's model factory; vae sample/eval --run find it through model.assembly.</summary>
public sealed class MlpVaeFamily : IModelFamily
{
    /// <summary>The name of the family's own term (see <see cref="MlpVae.Objective"/>).</summary>
    public const string PosteriorSigma = "posterior_sigma";

    public IReadOnlyList<string> Kinds { get; } = ["mlp-vae"];

    /// <summary>Its title in report.html and its format on the console; without this line the chart would still be
    /// drawn, titled posterior_sigma, and the console would print two decimals.</summary>
    public IReadOnlyList<MetricInfo> Metrics { get; } = [new(PosteriorSigma, "Mean posterior σ (mlp-vae)", Format: "F3")];

    public string Description => "mlp-vae: the classic MLP VAE (pixels → hidden → z → hidden → pixels)";

    public ModelConfig Validate(ModelConfig config)
    {
        // Settings by key: the library reports model.latent, vae train --latent.
        if (config.Latent <= 0) throw new BadInputException($"{Settings.Model.Latent} must be positive (got {config.Latent}).");
        if (config.OptionsAs<MlpOptions>().Hidden <= 0) throw new BadInputException($"{SettingKey.ModelOption("hidden")} must be positive.");
        return config;
    }

    public VaeModel Create(ModelConfig config) => new MlpVae(config);
}
