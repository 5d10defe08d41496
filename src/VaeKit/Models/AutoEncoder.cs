using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using VaeKit.Layers;
using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// The lab's convolutional AutoEncoder / Variational AutoEncoder: <see cref="Encoder"/> → project_latent →
/// (reparameterize) → <see cref="Decoder"/>. (B, C, s, s) in [0, 1] → <see cref="ModelOutput"/>.
/// </summary>
/// <remarks>
/// The VAE's project_latent emits 2z numbers split into (mu, logvar) of q(z|x) = N(mu, exp(logvar));
/// training decodes z = mu + ε·exp(½·logvar), ε ~ N(0, I) (Kingma and Welling 2014, §2.4), evaluation decodes mu.
/// The AE's project_latent emits z numbers used directly. The objective, prior and likelihood are
/// <see cref="VaeModel"/>'s defaults: this class is only the architecture.
/// </remarks>
public sealed class AutoEncoder : VaeModel
{
    [ComponentName(Name = "encoder")] private readonly Encoder _encoder;
    [ComponentName(Name = "project_latent")] private readonly Linear _projectLatent;
    [ComponentName(Name = "decoder")] private readonly Decoder _decoder;

    /// <param name="config">A validated config of kind ae or vae (build through <see cref="ModelFactory.Create"/>).</param>
    public AutoEncoder(ModelConfig config) : base(config.Kind == ModelKinds.Vae ? "VAE" : "AE", config)
    {
        IsVariational = config.Kind == ModelKinds.Vae;
        _encoder = new Encoder(config);
        _projectLatent = nn.Linear(config.FlatFeatures, (IsVariational ? 2 : 1) * config.Latent);
        _decoder = new Decoder(config);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override bool IsVariational { get; }

    /// <summary>(B, C, s, s) → N(mu, exp(logvar)) for the VAE, the code itself for the AE; (B, z) each.</summary>
    public override Posterior Encode(Tensor x)
    {
        var h = _projectLatent.call(_encoder.call(x));   // (B, heads·z)
        if (!IsVariational) return new PointPosterior(h);
        var parts = h.chunk(2, dim: 1);
        return new GaussianPosterior(parts[0], parts[1]);
    }

    /// <summary>(B, z) → (B, C, s, s) in (0, 1).</summary>
    public override Tensor Decode(Tensor z) => _decoder.call(z);
}

/// <summary>Builds <see cref="AutoEncoder"/> for the kinds ae and vae.</summary>
public sealed class AutoEncoderFamily : IModelFamily
{
    /// <inheritdoc/>
    public IReadOnlyList<string> Kinds { get; } = [ModelKinds.Ae, ModelKinds.Vae];

    /// <inheritdoc/>
    public string Description => "ae: deterministic AutoEncoder; vae: Gaussian posterior, N(0, I) prior, squared-error reconstruction";

    /// <summary>The shared CNN's checks; ae and vae have no family options, so any option given is refused.</summary>
    public ModelConfig Validate(ModelConfig config)
    {
        if (config.Options is { Count: > 0 } given)
            throw new BadInputException($"{SettingKey.ModelOption(given.First().Key)} is not an option of {config.Kind}: ae and vae take no model options " +
                                        $"(sigma-vae takes sigma; vq-vae takes codebook, code_dim, layout, ...).");
        return config.ValidateConvolutional();
    }

    /// <inheritdoc/>
    public VaeModel Create(ModelConfig config) => new AutoEncoder(config);
}
