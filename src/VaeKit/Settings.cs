namespace VaeKit;

// Each key documents itself: its path is the config.json place or operation option it names.
#pragma warning disable CS1591

/// <summary>
/// Every setting a VaeKit message can name, by its config.json path or, for an operation's options, by
/// <c>operation.option</c>. This is the library's vocabulary: messages hold these keys (see <see cref="SettingText"/>),
/// and a front end maps each to its own spelling. A CLI test checks that every key here that a user can set on the
/// command line has exactly one flag.
/// </summary>
public static class Settings
{
    internal const string ModelOptionPrefix = "model.options.";

    /// <summary>The "train" part of config.json.</summary>
    public static class Train
    {
        public static readonly SettingKey Epochs = new("train.epochs"), BatchSize = new("train.batch_size"),
            LearningRate = new("train.learning_rate"), KlWeight = new("train.kl_weight"), KlSchedule = new("train.kl_schedule"),
            FreeBits = new("train.free_bits"), WeightDecay = new("train.weight_decay"), Beta1 = new("train.beta1"),
            Beta2 = new("train.beta2"), Schedule = new("train.schedule"), WarmupSteps = new("train.warmup_steps"),
            GradClip = new("train.grad_clip"), Seed = new("train.seed"), MaxSteps = new("train.max_steps"),
            LogEvery = new("train.log_every"), CheckpointMinutes = new("train.checkpoint_minutes"),
            AdversarialWeight = new("train.adversarial_weight"), AdversarialStart = new("train.adversarial_start"),
            AdversarialLoss = new("train.adversarial_loss"), DiscriminatorLearningRate = new("train.discriminator_learning_rate"),
            DiscriminatorBeta1 = new("train.discriminator_beta1"), DiscriminatorBeta2 = new("train.discriminator_beta2"),
            DiscriminatorLayers = new("train.discriminator_layers"), DiscriminatorWidth = new("train.discriminator_width"),
            DiscriminatorNorm = new("train.discriminator_norm"), FeatureMatchingWeight = new("train.feature_matching_weight"),
            PerceptualNet = new("train.perceptual_net"), PerceptualWeight = new("train.perceptual_weight");
    }

    /// <summary>The "data" part of config.json.</summary>
    public static class Data
    {
        public static readonly SettingKey Source = new("data.source"), Channels = new("data.channels"),
            ValidationFraction = new("data.validation_fraction"), Flip = new("data.flip"), CacheDirectory = new("data.cache_directory");
    }

    /// <summary>The "runtime" part of config.json, and where libtorch comes from.</summary>
    public static class Runtime
    {
        public static readonly SettingKey Device = new("runtime.device"), Threads = new("runtime.threads"),
            Precision = new("runtime.precision"), ReadbackEvery = new("runtime.readback_every"),
            Deterministic = new("runtime.deterministic"), CudnnBenchmark = new("runtime.cudnn_benchmark"),
            LibTorch = new("runtime.libtorch");
    }

    /// <summary>The "model" part of config.json; a family's own options are <see cref="SettingKey.ModelOption"/>.</summary>
    public static class Model
    {
        public static readonly SettingKey Kind = new("model.kind"), Widths = new("model.widths"), Blocks = new("model.blocks"),
            Latent = new("model.latent"), ImageSize = new("model.image_size"), Groups = new("model.groups"),
            Norm = new("model.norm"), Options = new("model.options"), Preset = new("model.preset"),
            Assembly = new("model.assembly");
    }

    /// <summary>Where a run lives and how it continues.</summary>
    public static class Run
    {
        public static readonly SettingKey Name = new("run.name"), RunsDirectory = new("run.runs_directory"),
            Directory = new("run.directory"), Checkpoint = new("run.checkpoint"), WandbTracking = new("run.wandb");
        public static readonly SettingKey Resume = new("resume.run_directory"), ResumeFrom = new("resume.from"),
            AllowDataChange = new("resume.allow_data_change");
    }

    /// <summary>The options of <c>Inference</c>'s pictures and <see cref="Evaluation.LatentTraversal"/>.</summary>
    public static class Pictures
    {
        public static readonly SettingKey SampleCount = new("sample.n"), Temperature = new("sample.temperature"),
            ReconstructCount = new("reconstruct.n"), Pairs = new("interpolate.pairs"), InterpolationSteps = new("interpolate.steps"),
            Dims = new("traverse.dims"), TraversalSteps = new("traverse.steps"), Image = new("traverse.image");
    }

    /// <summary>The options of <see cref="Evaluation.Evaluator"/>.</summary>
    public static class Eval
    {
        public static readonly SettingKey Samples = new("eval.samples"), DecoderVariance = new("eval.decoder_variance"),
            BatchSize = new("eval.batch_size"), Limit = new("eval.limit"), FdImages = new("eval.fd_images"), Prior = new("eval.prior");
    }

    /// <summary>The options of fitting a prior (<see cref="Priors.PriorKinds"/>).</summary>
    public static class Prior
    {
        public static readonly SettingKey Kind = new("prior.kind"), Components = new("prior.components"),
            MaxSteps = new("prior.max_steps"), Data = new("prior.data");
    }

    /// <summary>The options of <see cref="Sweeps.Sweep"/> (its name is <see cref="Run.Name"/>).</summary>
    public static class Sweep
    {
        public static readonly SettingKey Grid = new("sweep.grid"), KlWeights = new("sweep.kl_weights"), WithAe = new("sweep.with_ae"),
            SweepsDirectory = new("sweep.sweeps_directory"), Directory = new("sweep.directory"),
            Task = new("sweep.task"), Slurm = new("sweep.slurm"), SlurmOptions = new("sweep.slurm_options");
    }

    /// <summary>The options of <see cref="Benchmarks.TrainBenchmark"/>.</summary>
    public static class Bench
    {
        public static readonly SettingKey Batch = new("bench.batch"), Steps = new("bench.steps"), Warmup = new("bench.warmup");
    }

    /// <summary>What <c>Serving</c> shows.</summary>
    public static class Serve
    {
        public static readonly SettingKey Runs = new("serve.runs"), Sweep = new("serve.sweep");
    }

    /// <summary>The options of importing PyTorch weights as a run (<c>Export.ModelExport.ImportRun</c>).</summary>
    public static class Import
    {
        public static readonly SettingKey Preset = new("import.preset"), Config = new("import.config"), Out = new("import.out");
    }

    /// <summary>VaeKit's operations, as <see cref="Operation"/> names.</summary>
    public static class Operations
    {
        public const string Train = "train", Prior = "prior", Sweep = "sweep", Eval = "eval";
    }
}
