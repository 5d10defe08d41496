using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using VaeKit.Layers;
using static TorchSharp.torch;

namespace VaeKit;

/// <summary>
/// What a forward pass returns. <paramref name="Mu"/> is the code (the posterior mean for a VAE), <paramref name="LogVar"/>
/// the posterior log-variance (null for an AE), <paramref name="Z"/> the code that was decoded: a posterior sample
/// in training mode, the mean in evaluation mode.
/// </summary>
public sealed record ModelOutput(Tensor Reconstruction, Tensor Mu, Tensor? LogVar, Tensor Z);

/// <summary>
/// The lab's convolutional AutoEncoder / Variational AutoEncoder: <see cref="Encoder"/> → project_latent →
/// (reparameterize) → <see cref="Decoder"/>. (B, C, s, s) in [0, 1] → <see cref="ModelOutput"/>.
/// </summary>
/// <remarks>
/// The VAE's project_latent emits 2z numbers split into (mu, logvar) of q(z|x) = N(mu, exp(logvar));
/// training decodes z = mu + ε·exp(½·logvar), ε ~ N(0, I) (Kingma and Welling 2014, §2.4), evaluation decodes mu.
/// The AE's project_latent emits z numbers used directly.
/// </remarks>
public sealed class AutoEncoder : nn.Module<Tensor, ModelOutput>
{
    [ComponentName(Name = "encoder")] private readonly Encoder _encoder;
    [ComponentName(Name = "project_latent")] private readonly Linear _projectLatent;
    [ComponentName(Name = "decoder")] private readonly Decoder _decoder;

    public AutoEncoder(ModelConfig config) : base(config.Kind == ModelKind.Vae ? "VAE" : "AE")
    {
        Config = config.Validate();
        _encoder = new Encoder(config);
        int heads = config.Kind == ModelKind.Vae ? 2 : 1;
        _projectLatent = nn.Linear(config.FlatFeatures, heads * config.Latent);
        _decoder = new Decoder(config);
        RegisterComponents();
    }

    public ModelConfig Config { get; }

    public bool IsVariational => Config.Kind == ModelKind.Vae;

    /// <summary>Number of trainable parameters (running statistics excluded).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>(B, C, s, s) → mu (B, z) and, for the VAE, logvar (B, z).</summary>
    public (Tensor Mu, Tensor? LogVar) Encode(Tensor x)
    {
        var h = _projectLatent.call(_encoder.call(x));   // (B, heads·z)
        if (!IsVariational) return (h, null);
        var parts = h.chunk(2, dim: 1);
        return (parts[0], parts[1]);
    }

    /// <summary>(B, z) → (B, C, s, s) in (0, 1).</summary>
    public Tensor Decode(Tensor z) => _decoder.call(z);

    /// <summary>
    /// Source of the reparameterisation noise ε; null = libtorch's global generator of the model's device. TorchSharp's
    /// generators are CPU-only, so the trainer installs its own on the CPU and seeds the device's default one on CUDA,
    /// per step in both cases, so a resume draws the same noise.
    /// </summary>
    public Generator? Noise { get; set; }

    /// <summary>z = mu + ε·exp(½·logvar), ε ~ N(0, I) from <paramref name="noise"/> (null = the global generator).</summary>
    public static Tensor Reparameterize(Tensor mu, Tensor logVar, Generator? noise = null) =>
        mu + randn(mu.shape, dtype: mu.dtype, device: mu.device, generator: noise) * (0.5 * logVar).exp();

    public override ModelOutput forward(Tensor x)
    {
        var (mu, logVar) = Encode(x);
        var z = training && logVar is not null ? Reparameterize(mu, logVar, Noise) : mu;
        return new ModelOutput(Decode(z), mu, logVar, z);
    }
}
