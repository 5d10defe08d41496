using TorchSharp;
using VaeKit.Adversarial;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// What judges a reconstruction beyond its pixels, for any family: a PatchGAN discriminator trained beside the
/// autoencoder (its generator loss scaled by VQGAN's adaptive weight, and the learned similarity of VAE-GAN, the
/// distance between its features of x and x̂), and a perceptual network the user brings. It acts on images and
/// reconstructions only. Each step has two sides, in this order: <see cref="Generator"/> adds its terms to the
/// autoencoder's loss; after the autoencoder's backward pass, <see cref="TrainDiscriminator"/> computes the
/// discriminator's gradients on x and the detached x̂. The trainer then applies the autoencoder's update, then the
/// discriminator's. Before <see cref="TrainConfig.AdversarialStart"/> the discriminator is neither run nor trained and
/// its numbers are reported as 0.
/// </summary>
internal sealed class ReconstructionCritics : IDisposable
{
    /// <summary>The adaptive weight is clamped here (VQGAN clamps at 1e4 for a per-pixel mean loss; VaeKit's loss sums
    /// over the pixels, so the clamp is 1e4 per pixel).</summary>
    private const double MaxAdaptivePerPixel = 1e4;

    private readonly TrainConfig _config;
    private readonly long _pixels;

    private ReconstructionCritics(TrainConfig config, long pixels, OptimizedModule? discriminator, PerceptualNetwork? perceptual)
    {
        _config = config;
        _pixels = pixels;
        Discriminator = discriminator;
        Perceptual = perceptual;
    }

    /// <summary>The discriminator and its optimizer; null when no setting needs one.</summary>
    public OptimizedModule? Discriminator { get; }

    /// <summary>The user's perceptual network; null without one.</summary>
    public PerceptualNetwork? Perceptual { get; }

    /// <summary>
    /// The critics a run's settings ask for, on <paramref name="device"/>; null when none is asked for (then training
    /// is exactly the single-optimizer step, at no extra cost).
    /// </summary>
    public static ReconstructionCritics? Create(TrainConfig train, ModelConfig model, Device device, Precision precision, bool channelsLast)
    {
        if (!train.HasDiscriminator && train.PerceptualWeight == 0) return null;
        OptimizedModule? discriminator = null;
        PerceptualNetwork? perceptual = null;
        try
        {
            if (train.HasDiscriminator)
            {
                var spec = DiscriminatorSpec.For(train, model.InChannels, model.ImageSize);
                var module = new PatchDiscriminator(spec);
                module.to(device);
                discriminator = new OptimizedModule(
                    "discriminator", module, () => new PatchDiscriminator(spec),
                    flat => new FlatAdamW(flat, zeros_like(flat.Values), train.DiscriminatorBeta1, train.DiscriminatorBeta2, weightDecay: 0),
                    _ => train.DiscriminatorLearningRate, gradClip: 0, precision, channelsLast);
            }
            if (train.PerceptualWeight > 0)
                perceptual = PerceptualNetwork.Load(train.PerceptualNet!, device, model.InChannels, model.ImageSize);
            return new ReconstructionCritics(train, (long)model.InChannels * model.ImageSize * model.ImageSize, discriminator, perceptual);
        }
        catch
        {
            discriminator?.Module.Dispose();
            discriminator?.Dispose();
            perceptual?.Dispose();
            throw;
        }
    }

    /// <summary>Whether the discriminator takes part in step <paramref name="step"/> (0-based, before the update).</summary>
    public bool Active(long step) => Discriminator is not null && step >= _config.AdversarialStart;

    /// <summary>
    /// The autoencoder's side of a step: the loss to add to the family's objective and the numbers to report
    /// (the same names every step of a run, 0 before the start step, so epoch means and every output see one set of keys). <paramref name="reconstructionLoss"/> is the family's loss, whose
    /// gradient norm at <paramref name="lastLayer"/> (the decoder's output weight, in the module that computed
    /// <paramref name="reconstruction"/>) the adaptive weight matches.
    /// </summary>
    public (Tensor Loss, IReadOnlyList<(string Name, Tensor Value)> Terms) Generator(Tensor x, Tensor reconstruction, Tensor reconstructionLoss,
                                                                                   Tensor lastLayer, long step)
    {
        var zero = zeros([], dtype: ScalarType.Float32, device: x.device);
        Tensor extra = zero;
        Tensor similarity = reconstructionLoss;                     // the loss the adversarial gradient is matched to
        Tensor? perceptual = null;
        if (Perceptual is not null)
        {
            perceptual = Perceptual.Distance(x, reconstruction).to(ScalarType.Float32).flatten().mean();
            extra = extra + _config.PerceptualWeight * perceptual;
            similarity = similarity + _config.PerceptualWeight * perceptual;
        }

        Tensor generatorLoss = zero, adaptive = zero, matching = zero;
        if (Active(step))
        {
            var d = Discriminator!;
            d.RequiresGrad(false);                                  // the generator's loss flows through D to x̂ only
            var (fakeLogits, fakeFeatures) = Features(d, reconstruction);
            if (_config.FeatureMatchingWeight > 0)
            {
                IReadOnlyList<Tensor> realFeatures;
                using (no_grad()) realFeatures = Features(d, x).Features;
                matching = fakeFeatures.Zip(realFeatures, (f, r) => (f - r).square().mean()).Aggregate((a, b) => a + b) * _pixels;
                extra = extra + _config.FeatureMatchingWeight * matching;
                similarity = similarity + _config.FeatureMatchingWeight * matching;
            }
            if (_config.AdversarialWeight > 0)
            {
                generatorLoss = _config.AdversarialLoss == AdversarialLoss.Hinge
                    ? -fakeLogits.mean()
                    : nn.functional.softplus(-fakeLogits).mean();
                adaptive = AdaptiveWeight(similarity, generatorLoss, lastLayer) * _config.AdversarialWeight;
                extra = extra + adaptive * generatorLoss;
            }
        }

        var terms = new List<(string, Tensor)>();
        if (Discriminator is not null)
        {
            terms.Add((MetricNames.GeneratorLoss, generatorLoss.detach()));
            terms.Add((MetricNames.AdaptiveWeight, adaptive));
            if (_config.FeatureMatchingWeight > 0) terms.Add((MetricNames.FeatureMatching, matching.detach()));
        }
        if (perceptual is not null) terms.Add((MetricNames.Perceptual, perceptual.detach()));
        return (extra, terms);
    }

    /// <summary>
    /// The discriminator's side of a step, after the autoencoder's backward pass: its gradients from the GAN loss on
    /// x (real) and the detached x̂ (fake), and its numbers (loss, mean logits). Its update is <see cref="Step"/>.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Value)> TrainDiscriminator(Tensor x, Tensor reconstruction, long step)
    {
        if (Discriminator is null) return [];
        var zero = zeros([], dtype: ScalarType.Float32, device: x.device);
        if (!Active(step))
            return [(MetricNames.DiscriminatorLoss, zero), (MetricNames.LogitsReal, zero), (MetricNames.LogitsFake, zero)];
        var d = Discriminator;
        d.RequiresGrad(true);
        d.ZeroGrad();
        var real = Features(d, x).Logits;
        var fake = Features(d, reconstruction.detach()).Logits;
        var loss = _config.AdversarialLoss == AdversarialLoss.Hinge
            ? 0.5 * (nn.functional.relu(1 - real).mean() + nn.functional.relu(1 + fake).mean())
            : 0.5 * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean());
        loss.backward();
        d.FinishBackward().Dispose();
        return [(MetricNames.DiscriminatorLoss, loss.detach()), (MetricNames.LogitsReal, real.detach().mean()), (MetricNames.LogitsFake, fake.detach().mean())];
    }

    /// <summary>The discriminator's update (after the autoencoder's), when it took part in the step.</summary>
    public void Step(long step)
    {
        if (Active(step)) Discriminator!.Step(step);
    }

    /// <summary>
    /// VQGAN's adaptive weight: ‖∇_w L_similarity‖ / (‖∇_w L_G‖ + 1e-4) at the decoder's last weight w, clamped and
    /// detached, so the adversarial gradient there is as strong as the reconstruction's.
    /// </summary>
    private Tensor AdaptiveWeight(Tensor similarity, Tensor generatorLoss, Tensor lastLayer)
    {
        var gradients = autograd.grad([similarity], [lastLayer], retain_graph: true, allow_unused: true);
        var adversarial = autograd.grad([generatorLoss], [lastLayer], retain_graph: true, allow_unused: true);
        if (gradients[0] is null || adversarial[0] is null)
            return ones([], dtype: ScalarType.Float32, device: similarity.device);
        var ratio = gradients[0].to(ScalarType.Float32).norm() / (adversarial[0].to(ScalarType.Float32).norm() + 1e-4);
        return ratio.clamp(0, MaxAdaptivePerPixel * _pixels).detach();
    }

    /// <summary>The discriminator's logits and features of <paramref name="images"/>, in fp32 whatever it computes in.</summary>
    private static (Tensor Logits, IReadOnlyList<Tensor> Features) Features(OptimizedModule d, Tensor images)
    {
        var (logits, features) = ((PatchDiscriminator)d.Compute).Features(d.Input(images));
        if (d.Twin is null) return (logits, features);
        return (logits.to(ScalarType.Float32), features.Select(f => f.to(ScalarType.Float32)).ToList());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Discriminator is not null)
        {
            Discriminator.Dispose();
            Discriminator.Module.Dispose();
        }
        Perceptual?.Dispose();
    }
}
