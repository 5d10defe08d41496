namespace VaeKit.Models;

/// <summary>
/// The names every output uses for the numbers a run reports, declared once. metrics.jsonl writes them as keys (train
/// rows as is, epoch rows as <c>train_NAME</c> and <c>val_NAME</c>), TensorBoard and W&amp;B as <c>train/NAME</c> and
/// <c>val/NAME</c>. A model family adds its own terms (e.g. <c>commitment</c>) by naming them in its
/// <see cref="Objective"/>; they flow through every output without further registration.
/// </summary>
public static class MetricNames
{
    /// <summary>The minimised objective, per image.</summary>
    public const string Loss = "loss";
    /// <summary>The decoder's term per image: Σ_pixels (x − x̂)² for the lab's models, a Gaussian NLL for σ-VAE.</summary>
    public const string Reconstruction = "reconstruction";
    /// <summary>KL(q(z|x) ‖ p(z)) per image, nats.</summary>
    public const string Kl = "kl";
    /// <summary>Squared error per pixel on the [0, 1] scale.</summary>
    public const string Mse = "mse";
    /// <summary>dB, from <see cref="Mse"/>.</summary>
    public const string Psnr = "psnr";
    /// <summary>The KL weight in effect (after --kl-schedule).</summary>
    public const string KlWeight = "kl_weight";
    /// <summary>Learning rate in effect.</summary>
    public const string LearningRate = "lr";
    /// <summary>Global gradient norm before clipping.</summary>
    public const string GradNorm = "grad_norm";
    /// <summary>Training throughput, a moving average.</summary>
    public const string ImagesPerSecond = "img_per_sec";
    /// <summary>The autoencoder's GAN loss against the discriminator (before the adaptive weight).</summary>
    public const string GeneratorLoss = "g_loss";
    /// <summary>The multiplier of <see cref="GeneratorLoss"/> in the autoencoder's loss: VQGAN's adaptive weight × adversarial_weight.</summary>
    public const string AdaptiveWeight = "adaptive_weight";
    /// <summary>The discriminator's loss on real images and reconstructions.</summary>
    public const string DiscriminatorLoss = "d_loss";
    /// <summary>The discriminator's mean logit on real images.</summary>
    public const string LogitsReal = "logits_real";
    /// <summary>The discriminator's mean logit on reconstructions.</summary>
    public const string LogitsFake = "logits_fake";
    /// <summary>Learned similarity: squared distance between the discriminator's features of x and x̂, per image.</summary>
    public const string FeatureMatching = "feature_matching";
    /// <summary>The user's perceptual network's distance between x and x̂, per image.</summary>
    public const string Perceptual = "perceptual";

    /// <summary>
    /// How the standard numbers are shown, in chart order: title, and whether report.html draws them. A family adds
    /// its own through <see cref="IModelFamily.Metrics"/>; a number nobody declared is still charted, under its name.
    /// </summary>
    public static IReadOnlyList<MetricInfo> Standard { get; } =
    [
        new(Loss, "Loss"),
        new(Reconstruction, "Reconstruction"),
        new(Kl, "KL"),
        new(Mse, "MSE per pixel", Format: "F5"),
        new(Psnr, "PSNR (dB)", Kind: MetricKind.Derived),
        new(LearningRate, "Learning rate", Validated: false, Kind: MetricKind.Step),
        new(KlWeight, "KL weight in effect", Charted: false, Kind: MetricKind.Step),
        new(GradNorm, "Gradient norm", Charted: false, Kind: MetricKind.Step),
        new(ImagesPerSecond, "Images per second", Charted: false, Kind: MetricKind.Step),
        new(GeneratorLoss, "Generator loss (GAN)", Validated: false, Format: "F3"),
        new(AdaptiveWeight, "Adaptive weight × adversarial weight", Validated: false, Format: "G3"),
        new(DiscriminatorLoss, "Discriminator loss", Validated: false, Format: "F3"),
        new(LogitsReal, "Discriminator logit, real", Validated: false, Format: "F3"),
        new(LogitsFake, "Discriminator logit, reconstructed", Validated: false, Format: "F3"),
        new(FeatureMatching, "Feature matching (learned similarity)", Validated: false),
        new(Perceptual, "Perceptual distance", Validated: false, Format: "F4"),
    ];

    /// <summary>Adds the derived numbers to a set of reduced values (a step's, an epoch's means, an evaluation's): PSNR
    /// from the MSE, computed from the reduced MSE rather than averaged.</summary>
    public static void AddDerived(IDictionary<string, double> values)
    {
        if (values.TryGetValue(Mse, out double mse)) values[Psnr] = Losses.Psnr(mse);
    }

    /// <summary>Whether <paramref name="name"/> is a batch mean that epochs and evaluations average (an objective term
    /// or a family's number); false for the derived and per-step numbers declared in <see cref="Standard"/>.</summary>
    public static bool IsTerm(string name) => !NotTerms.Contains(name);

    /// <summary>The declaration of <paramref name="name"/>: a standard number's, else the first registered family's
    /// that declares it; null for an undeclared number (outputs then use its name, a chart and F2).</summary>
    public static MetricInfo? Find(string name) =>
        Standard.FirstOrDefault(m => m.Name == name)
        ?? ModelFactory.Registered.Values.Distinct().SelectMany(f => f.Metrics).FirstOrDefault(m => m.Name == name);

    /// <summary>How the console prints <paramref name="value"/> of <paramref name="name"/> (its declared format).</summary>
    public static string Format(string name, double value) => value.ToString(Find(name)?.Format ?? "F2");

    // Asked for every number of every step: a set, not a search of Standard.
    private static readonly HashSet<string> NotTerms = Standard.Where(m => m.Kind != MetricKind.Term).Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
}

/// <summary>
/// A number a run reports, declared once for every output that shows it: its key in metrics.jsonl (train rows; epoch
/// rows add val_/train_), its title, whether report.html charts it, whether epoch rows carry a validation value, how
/// it is reduced over an epoch (<see cref="MetricKind"/>) and the .NET format the console prints it with.
/// </summary>
public sealed record MetricInfo(string Name, string Title, bool Charted = true, bool Validated = true, MetricKind Kind = MetricKind.Term,
                                string Format = "F2");

/// <summary>How a number is reduced over an epoch or an evaluation.</summary>
public enum MetricKind
{
    /// <summary>A batch mean (a term of the objective, a family's diagnostic): averaged over the epoch's steps.</summary>
    Term,
    /// <summary>Computed from other numbers (PSNR from the MSE), so computed again from their means, never averaged.</summary>
    Derived,
    /// <summary>A fact about the step (learning rate, KL weight, gradient norm, throughput): not averaged.</summary>
    Step,
}
