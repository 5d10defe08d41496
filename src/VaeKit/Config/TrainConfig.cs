namespace VaeKit.Config;

/// <summary>How the learning rate moves after the linear warm-up.</summary>
public enum LrSchedule
{
    /// <summary>Cosine decay from the peak to 0 at the last step.</summary>
    Cosine,
    /// <summary>Stays at the peak.</summary>
    Constant,
}

/// <summary>The GAN loss of the adversarial term.</summary>
public enum AdversarialLoss
{
    /// <summary>D: mean relu(1 − D(x)) + mean relu(1 + D(x̂)); G: −mean D(x̂) (VQGAN, StyleGAN-T, SAGAN).</summary>
    Hinge,
    /// <summary>D: softplus(−D(x)) + softplus(D(x̂)); G: softplus(−D(x̂)) (the original GAN's, non-saturating).</summary>
    NonSaturating,
}

/// <summary>The command-line and sweep spellings of <see cref="Config.AdversarialLoss"/> and <see cref="Config.DiscriminatorNorm"/>,
/// parsed in one place.</summary>
public static class AdversarialNames
{
    /// <summary>hinge, non-saturating.</summary>
    public static IReadOnlyList<string> Losses { get; } = ["hinge", "non-saturating"];

    /// <summary>batch, group, none.</summary>
    public static IReadOnlyList<string> Norms { get; } = ["batch", "group", "none"];

    /// <summary>The loss a spelling names; null for an unknown one.</summary>
    public static AdversarialLoss? ParseLoss(string text) => text switch
    {
        "hinge" => AdversarialLoss.Hinge,
        "non-saturating" => AdversarialLoss.NonSaturating,
        _ => null,
    };

    /// <summary>The norm a spelling names; null for an unknown one.</summary>
    public static DiscriminatorNorm? ParseNorm(string text) => text switch
    {
        "batch" => DiscriminatorNorm.Batch,
        "group" => DiscriminatorNorm.Group,
        "none" => DiscriminatorNorm.None,
        _ => null,
    };
}

/// <summary>Normalisation layers of the discriminator.</summary>
public enum DiscriminatorNorm
{
    /// <summary>BatchNorm (the PatchGAN of pix2pix and VQGAN).</summary>
    Batch,
    /// <summary>GroupNorm, 32 channels a group at most: statistics per image, so real and fake batches do not mix.</summary>
    Group,
    /// <summary>None.</summary>
    None,
}

/// <summary>Optimisation hyperparameters; the "train" part of <c>config.json</c>.</summary>
public sealed record TrainConfig
{
    /// <summary>Passes over the training set.</summary>
    public int Epochs { get; init; } = 20;
    /// <summary>Images per optimizer step.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Peak AdamW learning rate, reached after <see cref="WarmupSteps"/>.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Decoupled weight decay on conv and linear weights only (not on biases or norm affine parameters).
    /// Stated explicitly: TorchSharp's AdamW defaults to 0 where PyTorch's defaults to 0.01.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>AdamW's first-moment decay rate.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW's second-moment decay rate.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Multiplier of the KL term; 1 is the plain VAE. Ignored by the AE.</summary>
    public double KlWeight { get; init; } = 1.0;

    /// <summary>How the KL weight moves over the run: constant, linear-warmup:STEPS or cyclical:CYCLES[:RATIO]
    /// (see <see cref="Config.KlSchedule"/>); kl_weight is the value it reaches.</summary>
    public string KlSchedule { get; init; } = "constant";

    /// <summary>Free bits (Kingma et al. 2016): each latent dimension's batch-mean KL counts in the loss as at least
    /// this many nats, so the optimizer gains nothing by pushing it lower. 0 = off.</summary>
    public double FreeBits { get; init; }

    /// <summary>Learning rate after warm-up: cosine decay to 0 over the run, or constant.</summary>
    public LrSchedule Schedule { get; init; } = LrSchedule.Cosine;

    /// <summary>Linear warm-up from 0 to the peak learning rate over this many optimizer steps.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>Global gradient-norm clipping threshold; 0 disables clipping. The loss sums over pixels, so
    /// gradient norms scale with image size: the default only catches spikes.</summary>
    public double GradClip { get; init; } = 1000;

    /// <summary>Seed of weight initialisation, batch order, flips and posterior noise.</summary>
    public int Seed { get; init; } = 0;

    /// <summary>Stop after this many optimizer steps in total (smoke tests, quick looks); null = all epochs.</summary>
    public int? MaxSteps { get; init; }

    /// <summary>A train row goes to metrics.jsonl and TensorBoard every this many steps.</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Besides every epoch end, "last" is re-saved when this many minutes have passed since the last save.</summary>
    public double CheckpointMinutes { get; init; } = 10;

    /// <summary>Weight of the adversarial term: the generator loss of a PatchGAN discriminator, scaled by VQGAN's adaptive
    /// weight (the ratio of the reconstruction's and the generator's gradient norms at the decoder's last layer) times
    /// this. 0 = no discriminator (unless <see cref="FeatureMatchingWeight"/> needs one), at no cost.</summary>
    public double AdversarialWeight { get; init; }

    /// <summary>The discriminator is not used (not run, not trained, no term) before this optimizer step.</summary>
    public int AdversarialStart { get; init; }

    /// <summary>The GAN loss: hinge (VQGAN's) or non-saturating (the original GAN's, with logits).</summary>
    public AdversarialLoss AdversarialLoss { get; init; } = AdversarialLoss.Hinge;

    /// <summary>Learning rate of the discriminator's own AdamW, constant.</summary>
    public double DiscriminatorLearningRate { get; init; } = 2e-4;

    /// <summary>The discriminator's AdamW β1 (0.5: the GAN habit, VQGAN's too).</summary>
    public double DiscriminatorBeta1 { get; init; } = 0.5;

    /// <summary>The discriminator's AdamW β2.</summary>
    public double DiscriminatorBeta2 { get; init; } = 0.9;

    /// <summary>Stride-2 layers of the PatchGAN discriminator; null = sized to the image (3 from 32 px up, fewer below).</summary>
    public int? DiscriminatorLayers { get; init; }

    /// <summary>Channels of the discriminator's first layer (doubling per layer, at most 8×).</summary>
    public int DiscriminatorWidth { get; init; } = 64;

    /// <summary>Normalisation inside the discriminator: batch (PatchGAN's), group or none.</summary>
    public DiscriminatorNorm DiscriminatorNorm { get; init; } = DiscriminatorNorm.Batch;

    /// <summary>Learned similarity (VAE-GAN, Larsen et al. 2016): weight of the squared distance between the
    /// discriminator's intermediate features of x and x̂, added to the reconstruction term from
    /// <see cref="AdversarialStart"/> on. 0 = off.</summary>
    public double FeatureMatchingWeight { get; init; }

    /// <summary>A TorchScript module (two image batches in [0, 1] → a distance per image), e.g. LPIPS, whose distance
    /// is added to the reconstruction term; null = none.</summary>
    public string? PerceptualNet { get; init; }

    /// <summary>Weight of <see cref="PerceptualNet"/>'s distance (per image).</summary>
    public double PerceptualWeight { get; init; }

    /// <summary>Whether a discriminator is trained beside the autoencoder.</summary>
    public bool HasDiscriminator => AdversarialWeight > 0 || FeatureMatchingWeight > 0;

    /// <summary>Checks the values; throws <see cref="BadInputException"/> naming the first bad one.</summary>
    public TrainConfig Validate()
    {
        if (Epochs <= 0) throw new BadInputException($"{Settings.Train.Epochs} must be positive (got {Epochs}).");
        if (BatchSize <= 1) throw new BadInputException($"{Settings.Train.BatchSize} must be at least 2, BatchNorm needs more than one image (got {BatchSize}).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new BadInputException($"{Settings.Train.LearningRate} must be a positive number (got {LearningRate}).");
        if (!(KlWeight >= 0) || double.IsInfinity(KlWeight)) throw new BadInputException($"{Settings.Train.KlWeight} must be 0 or more (got {KlWeight}).");
        Config.KlSchedule.Parse(KlSchedule);
        if (!(FreeBits >= 0) || double.IsInfinity(FreeBits)) throw new BadInputException($"{Settings.Train.FreeBits} must be 0 or more nats (got {FreeBits}).");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay)) throw new BadInputException($"{Settings.Train.WeightDecay} must be 0 or more (got {WeightDecay}).");
        if (!(Beta1 is >= 0 and < 1) || !(Beta2 is >= 0 and < 1)) throw new BadInputException($"{Settings.Train.Beta1} and {Settings.Train.Beta2} must be in [0, 1) (got {Beta1}, {Beta2}).");
        if (WarmupSteps < 0) throw new BadInputException($"{Settings.Train.WarmupSteps} must be 0 or more (got {WarmupSteps}).");
        if (!(GradClip >= 0)) throw new BadInputException($"{Settings.Train.GradClip} must be 0 (off) or positive (got {GradClip}).");
        if (!(CheckpointMinutes > 0)) throw new BadInputException($"{Settings.Train.CheckpointMinutes} must be positive (got {CheckpointMinutes}).");
        if (MaxSteps is <= 0) throw new BadInputException($"{Settings.Train.MaxSteps} must be positive (got {MaxSteps}).");
        if (LogEvery <= 0) throw new BadInputException($"{Settings.Train.LogEvery} must be positive (got {LogEvery}).");
        if (!(AdversarialWeight >= 0) || double.IsInfinity(AdversarialWeight)) throw new BadInputException($"{Settings.Train.AdversarialWeight} must be 0 (off) or positive (got {AdversarialWeight}).");
        if (AdversarialStart < 0) throw new BadInputException($"{Settings.Train.AdversarialStart} must be 0 or more (got {AdversarialStart}).");
        if (!(DiscriminatorLearningRate > 0) || double.IsInfinity(DiscriminatorLearningRate)) throw new BadInputException($"{Settings.Train.DiscriminatorLearningRate} must be a positive number (got {DiscriminatorLearningRate}).");
        if (!(DiscriminatorBeta1 is >= 0 and < 1) || !(DiscriminatorBeta2 is >= 0 and < 1)) throw new BadInputException($"{Settings.Train.DiscriminatorBeta1} and {Settings.Train.DiscriminatorBeta2} must be in [0, 1) (got {DiscriminatorBeta1}, {DiscriminatorBeta2}).");
        if (DiscriminatorLayers is < 1 or > 6) throw new BadInputException($"{Settings.Train.DiscriminatorLayers} must be 1 to 6 (got {DiscriminatorLayers}).");
        if (DiscriminatorWidth < 1) throw new BadInputException($"{Settings.Train.DiscriminatorWidth} must be positive (got {DiscriminatorWidth}).");
        if (!(FeatureMatchingWeight >= 0) || double.IsInfinity(FeatureMatchingWeight)) throw new BadInputException($"{Settings.Train.FeatureMatchingWeight} must be 0 (off) or positive (got {FeatureMatchingWeight}).");
        if (!(PerceptualWeight >= 0) || double.IsInfinity(PerceptualWeight)) throw new BadInputException($"{Settings.Train.PerceptualWeight} must be 0 (off) or positive (got {PerceptualWeight}).");
        if (PerceptualWeight > 0 && string.IsNullOrWhiteSpace(PerceptualNet)) throw new BadInputException($"{Settings.Train.PerceptualWeight} needs a network: give {Settings.Train.PerceptualNet}.");
        if (PerceptualWeight == 0 && !string.IsNullOrWhiteSpace(PerceptualNet)) throw new BadInputException($"{Settings.Train.PerceptualNet} is given but {Settings.Train.PerceptualWeight} is 0; give a positive weight.");
        return this;
    }
}

/// <summary>Where the images come from and how they are prepared; the "data" part of <c>config.json</c>.</summary>
public sealed record DataConfig
{
    /// <summary>What <c>--data</c> said: a folder, a .zip, <c>fashion-mnist[:PATH]</c> or <c>synthetic[:N]</c>.</summary>
    public string Source { get; init; } = "synthetic";

    /// <summary>1 (grey) or 3 (colour); null = the source's own (3, or 1 for Fashion-MNIST).</summary>
    public int? Channels { get; init; }

    /// <summary>Share of the images held out for validation, in [0, 1); 0 = no validation.</summary>
    public double ValidationFraction { get; init; } = 0.05;

    /// <summary>Random horizontal flips of training images.</summary>
    public bool Flip { get; init; }

    /// <summary>Where decoded sets are cached (<see cref="CacheLocation.Off"/> for none); null = the default user cache.</summary>
    public CacheLocation? CacheDirectory { get; init; }

    /// <summary>The decoded set's fingerprint, recorded when the run starts; a resume refuses other data.</summary>
    public string? Fingerprint { get; init; }

    /// <summary>Seed of the train/validation split and of the synthetic faces. Fixed, not --seed: runs with
    /// different seeds must be compared on the same validation images.</summary>
    public const int SplitSeed = 0;

    /// <summary>Checks the values; throws <see cref="BadInputException"/> naming the first bad one.</summary>
    public DataConfig Validate()
    {
        if (Channels is not (null or 1 or 3)) throw new BadInputException($"{Settings.Data.Channels} must be 1 or 3 (got {Channels}).");
        if (!(ValidationFraction >= 0 && ValidationFraction < 1))
            throw new BadInputException($"{Settings.Data.ValidationFraction} must be in [0, 1) (got {ValidationFraction}).");
        return this;
    }
}

/// <summary>Hardware choices. Not part of the experiment: a resumed run may pick other values.</summary>
public sealed record RuntimeConfig
{
    /// <summary>cpu, cuda or auto (cuda when the loaded libtorch has a GPU).</summary>
    public string Device { get; init; } = "auto";

    /// <summary>libtorch intra-op threads; null = one per core.</summary>
    public int? Threads { get; init; }

    /// <summary>Arithmetic of the training step: fp32, or bf16 compute with fp32 master weights (see <c>Trainer</c>).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>Let CUDA matmuls use TF32 tensor cores (convolutions do by libtorch's default). No effect on CPU.</summary>
    public bool Tf32 { get; init; } = true;

    /// <summary>
    /// Steps between host reads of the step's numbers; null = 1 on the CPU (a NaN stops the run before it touches the
    /// weights), 20 on CUDA (the host queues work ahead instead of waiting for every step).
    /// </summary>
    public int? ReadbackEvery { get; init; }

    /// <summary>bf16 only: channels-last (NHWC) compute; null = on for CUDA, off for CPU.</summary>
    public bool? ChannelsLast { get; init; }

    /// <summary>Deterministic algorithms (libtorch's switch; cuDNN deterministic, its benchmark mode off): a resume on
    /// CUDA continues bit-exactly where libtorch allows it, at some speed (see <see cref="LibTorchContext"/>).</summary>
    public bool Deterministic { get; init; }

    /// <summary>cuDNN benchmark mode (autotuned convolution algorithms, PyTorch's <c>cudnn.benchmark</c>); ignored
    /// under <see cref="Deterministic"/>. No effect on the CPU.</summary>
    public bool CudnnBenchmark { get; init; }

    /// <summary>Checks the values; throws <see cref="BadInputException"/> naming the first bad one.</summary>
    public RuntimeConfig Validate()
    {
        if (Threads is <= 0) throw new BadInputException($"{Settings.Runtime.Threads} must be positive (got {Threads}).");
        if (ReadbackEvery is <= 0) throw new BadInputException($"{Settings.Runtime.ReadbackEvery} must be positive (got {ReadbackEvery}).");
        return this;
    }
}

/// <summary>Training arithmetic. Bf16 keeps fp32 master weights, optimizer state, normalisation and losses.</summary>
public enum Precision
{
    /// <summary>Everything in 32-bit floats.</summary>
    Fp32,
    /// <summary>bfloat16 convolutions and matmuls with fp32 master weights.</summary>
    Bf16,
}

/// <summary>Everything that defines a run; written to <c>runs/NAME/config.json</c> and into each checkpoint.</summary>
public sealed record RunConfig
{
    /// <summary>Run name: the folder under runs/.</summary>
    public required string Name { get; init; }
    /// <summary>The preset the model came from, if any (informational).</summary>
    public string? Preset { get; init; }
    /// <summary>The model's shape and family.</summary>
    public required ModelConfig Model { get; init; }
    /// <summary>Optimisation hyperparameters.</summary>
    public required TrainConfig Train { get; init; }
    /// <summary>Data source and preparation.</summary>
    public required DataConfig Data { get; init; }
    /// <summary>Hardware choices (may change on resume).</summary>
    public RuntimeConfig Runtime { get; init; } = new();
}
