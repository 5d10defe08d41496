using System.CommandLine;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae train</c>: a new run from flags, or <c>--resume DIR</c>.</summary>
internal static class TrainCommand
{
    private static readonly TrainConfig TrainDefaults = new();
    private static readonly DataConfig DataDefaults = new();

    private static readonly Option<string?> Data = new Option<string?>("--data")
    {
        Description = "Images: a folder, a .zip (e.g. the Kaggle archive.zip), fashion-mnist[:DIR] or synthetic[:N] [default: synthetic]",
    }.Sets(Settings.Data.Source);
    private static readonly Option<int> Epochs = new Option<int>("--epochs") { Description = "Passes over the training set", DefaultValueFactory = _ => TrainDefaults.Epochs }.Sets(Settings.Train.Epochs);
    private static readonly Option<int> BatchSize = new Option<int>("--batch-size") { Description = "Images per step", DefaultValueFactory = _ => TrainDefaults.BatchSize }.Sets(Settings.Train.BatchSize);
    private static readonly Option<double> Lr = new Option<double>("--lr") { Description = "Peak AdamW learning rate", DefaultValueFactory = _ => TrainDefaults.LearningRate }.Sets(Settings.Train.LearningRate);
    private static readonly Option<double> KlWeight = new Option<double>("--kl-weight") { Description = "Weight of the KL term (VAE)", DefaultValueFactory = _ => TrainDefaults.KlWeight }.Sets(Settings.Train.KlWeight);
    private static readonly Option<string> KlScheduleOption = new Option<string>("--kl-schedule") { Description = "KL weight over the run: constant, linear-warmup:STEPS or cyclical:CYCLES[:RATIO]", DefaultValueFactory = _ => TrainDefaults.KlSchedule }.Sets(Settings.Train.KlSchedule);
    private static readonly Option<double> FreeBits = new Option<double>("--free-bits") { Description = "Per-dimension KL floor in nats (free bits; 0 = off)", DefaultValueFactory = _ => TrainDefaults.FreeBits }.Sets(Settings.Train.FreeBits);
    private static readonly Option<double> WeightDecay = new Option<double>("--weight-decay") { Description = "AdamW decoupled weight decay on conv/linear weights", DefaultValueFactory = _ => TrainDefaults.WeightDecay }.Sets(Settings.Train.WeightDecay);
    private static readonly Option<string> Schedule = new Option<string>("--schedule") { Description = "Learning rate after warm-up", HelpName = "cosine|constant", DefaultValueFactory = _ => "cosine" }.AcceptOnlyFromAmong("cosine", "constant").Sets(Settings.Train.Schedule);
    private static readonly Option<int> Warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps", DefaultValueFactory = _ => TrainDefaults.WarmupSteps }.Sets(Settings.Train.WarmupSteps);
    private static readonly Option<double> GradClip = new Option<double>("--grad-clip") { Description = "Clip the global gradient norm (0 = off)", DefaultValueFactory = _ => TrainDefaults.GradClip }.Sets(Settings.Train.GradClip);
    private static readonly Option<int> Seed = new Option<int>("--seed") { Description = "Seed for weights, batch order, flips and noise (the validation split is fixed)", DefaultValueFactory = _ => TrainDefaults.Seed }.Sets(Settings.Train.Seed);
    private static readonly Option<int?> MaxSteps = new Option<int?>("--max-steps") { Description = "Stop after this many steps in total [default: all epochs]" }.Sets(Settings.Train.MaxSteps);
    private static readonly Option<int> LogEvery = new Option<int>("--log-every") { Description = "Write a train row to metrics.jsonl every N steps", DefaultValueFactory = _ => TrainDefaults.LogEvery }.Sets(Settings.Train.LogEvery);
    internal static readonly Option<double> AdversarialWeight = new Option<double>("--adversarial-weight") { Description = "Weight of the PatchGAN term, times VQGAN's adaptive weight (0 = off: no discriminator)", DefaultValueFactory = _ => TrainDefaults.AdversarialWeight }.Sets(Settings.Train.AdversarialWeight);
    private static readonly Option<int> AdversarialStart = new Option<int>("--adversarial-start") { Description = "Step from which the discriminator is trained and used", DefaultValueFactory = _ => TrainDefaults.AdversarialStart }.Sets(Settings.Train.AdversarialStart);
    internal static readonly Option<string> AdversarialLossOption = new Option<string>("--adversarial-loss") { Description = "GAN loss", HelpName = "hinge|non-saturating", DefaultValueFactory = _ => "hinge" }.AcceptOnlyFromAmong([.. AdversarialNames.Losses]).Sets(Settings.Train.AdversarialLoss);
    private static readonly Option<double> DiscLr = new Option<double>("--disc-lr") { Description = "The discriminator's AdamW learning rate (constant)", DefaultValueFactory = _ => TrainDefaults.DiscriminatorLearningRate }.Sets(Settings.Train.DiscriminatorLearningRate);
    private static readonly Option<double> DiscBeta1 = new Option<double>("--disc-beta1") { Description = "The discriminator's AdamW β1", DefaultValueFactory = _ => TrainDefaults.DiscriminatorBeta1 }.Sets(Settings.Train.DiscriminatorBeta1);
    private static readonly Option<double> DiscBeta2 = new Option<double>("--disc-beta2") { Description = "The discriminator's AdamW β2", DefaultValueFactory = _ => TrainDefaults.DiscriminatorBeta2 }.Sets(Settings.Train.DiscriminatorBeta2);
    internal static readonly Option<int?> DiscLayers = new Option<int?>("--disc-layers") { Description = "Stride-2 layers of the PatchGAN [default: 3 from 32 px up, fewer below]" }.Sets(Settings.Train.DiscriminatorLayers);
    internal static readonly Option<int> DiscWidth = new Option<int>("--disc-width") { Description = "Channels of the discriminator's first layer (×2 per layer, at most ×8)", DefaultValueFactory = _ => TrainDefaults.DiscriminatorWidth }.Sets(Settings.Train.DiscriminatorWidth);
    internal static readonly Option<string> DiscNorm = new Option<string>("--disc-norm") { Description = "Normalisation in the discriminator", HelpName = "batch|group|none", DefaultValueFactory = _ => "batch" }.AcceptOnlyFromAmong([.. AdversarialNames.Norms]).Sets(Settings.Train.DiscriminatorNorm);
    internal static readonly Option<double> FeatureMatching = new Option<double>("--feature-matching-weight") { Description = "Learned similarity (VAE-GAN): weight of the distance between the discriminator's features of x and x̂ (0 = off)", DefaultValueFactory = _ => TrainDefaults.FeatureMatchingWeight }.Sets(Settings.Train.FeatureMatchingWeight);
    private static readonly Option<string?> PerceptualNet = new Option<string?>("--perceptual-net") { Description = "TorchScript file: forward(x, y), two image batches in [0, 1] → a distance per image (e.g. LPIPS)" }.Sets(Settings.Train.PerceptualNet);
    private static readonly Option<double> PerceptualWeight = new Option<double>("--perceptual-weight") { Description = "Weight of --perceptual-net's distance (0 = off)", DefaultValueFactory = _ => TrainDefaults.PerceptualWeight }.Sets(Settings.Train.PerceptualWeight);
    private static readonly Option<double> ValFraction = new Option<double>("--val-fraction") { Description = "Held-out validation fraction (Fashion-MNIST uses its test split)", DefaultValueFactory = _ => DataDefaults.ValidationFraction }.Sets(Settings.Data.ValidationFraction);
    private static readonly Option<bool> Flip = new Option<bool>("--flip") { Description = "Random horizontal flips of training images" }.Sets(Settings.Data.Flip);
    private static readonly Option<int?> Channels = new Option<int?>("--channels") { Description = "1 (grey) or 3 (colour) [default: the data's]" }.Sets(Settings.Data.Channels);
    private static readonly Option<string?> CacheDir = new Option<string?>("--cache-dir") { Description = "Decoded-dataset cache [default: $VAEKIT_CACHE, else $XDG_CACHE_HOME/vaekit, else ~/.cache/vaekit]" }.Sets(Settings.Data.CacheDirectory);
    private static readonly Option<bool> NoCache = new("--no-cache") { Description = "Decode every time; write no cache" };
    private static readonly Option<string> Device = new Option<string>("--device") { Description = "cpu, cuda or auto (cuda when the loaded libtorch has a GPU)", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
    private static readonly Option<int?> Threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch [default: one per core]" }.Sets(Settings.Runtime.Threads);
    internal static readonly Option<string> PrecisionOption = new Option<string>("--precision")
    {
        Description = "fp32, or bf16 compute with fp32 master weights (GPUs, and CPUs with AVX-512 BF16)",
        DefaultValueFactory = _ => "fp32",
        HelpName = "fp32|bf16",
    }.AcceptOnlyFromAmong("fp32", "bf16").Sets(Settings.Runtime.Precision);
    internal static readonly Option<string?> ChannelsLastOption = new Option<string?>("--channels-last")
    {
        Description = "With --precision bf16: NHWC compute for tensor-core convolutions [default: auto = on for CUDA]",
        HelpName = "on|off|auto",
    }.AcceptOnlyFromAmong("on", "off", "auto");
    internal static readonly Option<bool> NoTf32 = new("--no-tf32") { Description = "Exact fp32 on CUDA: no TF32 tensor cores in matmuls and convolutions" };
    internal static readonly Option<bool> DeterministicOption = new Option<bool>("--deterministic") { Description = "Deterministic algorithms, cuDNN benchmark off: a CUDA resume continues bit-exactly where libtorch allows (slower)" }.Sets(Settings.Runtime.Deterministic);
    internal static readonly Option<bool> CudnnBenchmarkOption = new Option<bool>("--cudnn-benchmark") { Description = "CUDA: let cuDNN autotune convolution algorithms (PyTorch's cudnn.benchmark)" }.Sets(Settings.Runtime.CudnnBenchmark);
    private static readonly Option<string?> Name = new Option<string?>("--name") { Description = "Run name; the run goes to RUNS-DIR/NAME [default: PRESET-MODEL-TIMESTAMP]" }.Sets(Settings.Run.Name);
    private static readonly Option<string> RunsDir = new Option<string>("--runs-dir") { Description = "Where runs are created", DefaultValueFactory = _ => "runs" }.Sets(Settings.Run.RunsDirectory);
    private static readonly Option<string?> Resume = new Option<string?>("--resume")
    {
        Description = "Continue the run in this directory where it stopped, with its stored settings (--data: the same data, moved)",
    }.Sets(Settings.Run.Resume);
    private static readonly Option<string> ResumeFrom = new Option<string>("--resume-from") { Description = "With --resume: last, best, or a checkpoint file", DefaultValueFactory = _ => "last" }.Sets(Settings.Run.ResumeFrom);
    private static readonly Option<bool> AllowDataChange = new Option<bool>("--allow-data-change") { Description = "With --resume: continue even if the data's fingerprint changed" }.Sets(Settings.Run.AllowDataChange);

    public static Command Create(IAnsiConsole console) => Create(console, new ModelOptions());

    /// <summary>The command with its model flags in <paramref name="models"/>, which <see cref="ToConfig"/> reads back.</summary>
    internal static Command Create(IAnsiConsole console, ModelOptions models)
    {
        var wandb = new WandbOptions();
        var command = new Command("train", "Train an AE or VAE; writes runs/NAME/ (config, metrics, grids, checkpoints, TensorBoard).");
        foreach (var option in new Option[] { Data })
            command.Options.Add(option);
        models.AddTo(command);
        foreach (var option in ExperimentOptions.Concat([RunsDir, Resume, ResumeFrom, AllowDataChange]))
            command.Options.Add(option);
        wandb.AddTo(command);
        command.SetAction(r => Execute(r, models, wandb, console));
        Resume.Description = $"Continue the run in this directory where it stopped, with its stored settings; only " +
                             $"{string.Join(", ", ResumeOptions.Changeable.Select(k => SettingFlags.FlagOf(command, k)))} may change (--data: the same data, moved)";
        return command;
    }

    internal static Option DataOption => Data;

    /// <summary>The flags <see cref="ToConfig"/> reads besides --data and the model's (<c>vae sweep</c> takes them too).</summary>
    internal static Option[] ExperimentOptions =>
        [Epochs, BatchSize, Lr, KlWeight, KlScheduleOption, FreeBits, WeightDecay, Schedule, Warmup, GradClip, Seed, MaxSteps, LogEvery,
         AdversarialWeight, AdversarialStart, AdversarialLossOption, DiscLr, DiscBeta1, DiscBeta2, DiscLayers, DiscWidth, DiscNorm,
         FeatureMatching, PerceptualNet, PerceptualWeight, ValFraction, Flip, Channels, CacheDir, NoCache, Device, Threads, PrecisionOption, ChannelsLastOption, NoTf32, DeterministicOption, CudnnBenchmarkOption, Name];

    /// <summary>Flags → the run's configuration; pure but for the clock, which is passed in (CommandConfigTests).</summary>
    internal static RunConfig ToConfig(ParseResult r, ModelOptions models, DateTimeOffset now)
    {
        var (preset, model) = models.ToConfig(r);
        var train = Critics(r) with
        {
            Epochs = r.GetValue(Epochs),
            BatchSize = r.GetValue(BatchSize),
            LearningRate = r.GetValue(Lr),
            KlWeight = r.GetValue(KlWeight),
            KlSchedule = r.GetValue(KlScheduleOption)!,
            FreeBits = r.GetValue(FreeBits),
            WeightDecay = r.GetValue(WeightDecay),
            Schedule = r.GetValue(Schedule) == "constant" ? LrSchedule.Constant : LrSchedule.Cosine,
            WarmupSteps = r.GetValue(Warmup),
            GradClip = r.GetValue(GradClip),
            Seed = r.GetValue(Seed),
            MaxSteps = r.GetValue(MaxSteps),
            LogEvery = r.GetValue(LogEvery),
            AdversarialStart = r.GetValue(AdversarialStart),
            DiscriminatorLearningRate = r.GetValue(DiscLr),
            DiscriminatorBeta1 = r.GetValue(DiscBeta1),
            DiscriminatorBeta2 = r.GetValue(DiscBeta2),
            PerceptualNet = PerceptualPath(r.GetValue(PerceptualNet)),
            PerceptualWeight = r.GetValue(PerceptualWeight),
        };
        var data = new DataConfig
        {
            Source = r.GetValue(Data) ?? "synthetic",
            Channels = r.GetValue(Channels),
            ValidationFraction = r.GetValue(ValFraction),
            Flip = r.GetValue(Flip),
            CacheDirectory = r.GetValue(NoCache) ? CacheLocation.Off : r.GetValue(CacheDir),
        };
        string name = r.GetValue(Name) ?? $"{preset}-{model.Kind}-{now:yyyyMMdd-HHmmss}";
        RunStore.ValidateName(name);
        return new RunConfig
        {
            Name = name, Preset = preset, Model = model, Train = train.Validate(), Data = data.Validate(),
            Runtime = Runtime(r),
        };
    }

    /// <summary>A perceptual network is a file, kept as a full path so a resume from elsewhere finds it; the names of the
    /// shipped FD networks are refused here (a file that is one is refused when loaded).</summary>
    private static string? PerceptualPath(string? path)
    {
        if (path is null) return null;
        if (Evaluation.FeatureNetwork.Shipped.Contains(path) && !File.Exists(path))
            throw new BadInputException(
                $"{Settings.Train.PerceptualNet} {path} names a shipped Fréchet-distance feature network: training against the network " +
                $"that judges the result lowers its score without making the pictures better. Bring a separate network (e.g. LPIPS exported " +
                $"to TorchScript), or use the discriminator's own features ({Settings.Train.FeatureMatchingWeight}).");
        return Path.GetFullPath(path);
    }

    /// <summary>The discriminator's settings from the flags <c>vae bench</c> shares with <c>vae train</c> (which adds the rest).</summary>
    internal static TrainConfig Critics(ParseResult r) => new TrainConfig
    {
        AdversarialWeight = r.GetValue(AdversarialWeight), FeatureMatchingWeight = r.GetValue(FeatureMatching),
        AdversarialLoss = AdversarialNames.ParseLoss(r.GetValue(AdversarialLossOption)!)!.Value,
        DiscriminatorLayers = r.GetValue(DiscLayers), DiscriminatorWidth = r.GetValue(DiscWidth),
        DiscriminatorNorm = AdversarialNames.ParseNorm(r.GetValue(DiscNorm)!)!.Value,
    }.Validate();

    private static RuntimeConfig Runtime(ParseResult r) => new()
    {
        Device = r.GetValue(Device)!, Threads = r.GetValue(Threads),
        Precision = ParsePrecision(r.GetValue(PrecisionOption)), Tf32 = !r.GetValue(NoTf32),
        ChannelsLast = ParseChannelsLast(r.GetValue(ChannelsLastOption)),
        Deterministic = r.GetValue(DeterministicOption), CudnnBenchmark = r.GetValue(CudnnBenchmarkOption),
    };

    internal static bool? ParseChannelsLast(string? text) => text switch { "on" => true, "off" => false, _ => null };

    internal static Precision ParsePrecision(string? text) => text == "bf16" ? Precision.Bf16 : Precision.Fp32;

    private static int Execute(ParseResult r, ModelOptions models, WandbOptions wandbOptions, IAnsiConsole console)
    {
        using var wandb = wandbOptions.Connect(r, console);   // a refused key stops here, before any data is loaded
        int exit = ExitCodes.Failure;
        try
        {
            // The run's outputs beyond metrics.jsonl, TensorBoard and report.html (which the library always writes) and the
            // console (a callback that is also a logger): register a new IRunLogger here.
            IReadOnlyList<IRunLogger> loggers = [.. WandbOptions.Loggers(wandb)];
            exit = Execute(r, models, console, loggers);
            return exit;
        }
        catch (Exception e) when (e is BadInputException or OperationCanceledException)
        {
            exit = e is BadInputException ? ExitCodes.BadInput : ExitCodes.Interrupted;
            throw;
        }
        finally
        {
            WandbOptions.Finish(wandb, exit, console);
        }
    }

    private static int Execute(ParseResult r, ModelOptions models, IAnsiConsole console, IReadOnlyList<IRunLogger> loggers)
    {
        using var stop = new StopSignals();
        RunResult result;
        if (r.GetValue(Resume) is string resume)
        {
            WarnIgnoredWithResume(r, console);
            var options = new ResumeOptions
            {
                RunDirectory = resume,
                Data = r.GetValue(Data),
                From = r.GetValue(ResumeFrom)!,
                Epochs = Given(r, Epochs) ? r.GetValue(Epochs) : null,
                Device = Given(r, Device) ? r.GetValue(Device) : null,
                Threads = r.GetValue(Threads),
                Precision = Given(r, PrecisionOption) ? ParsePrecision(r.GetValue(PrecisionOption)) : null,
                AllowDataChange = r.GetValue(AllowDataChange),
            };
            result = ConsoleListeners.Run(console, listener => TrainingRun.Resume(options, new TrainOptions { Callbacks = [listener], Loggers = loggers }, stop.Token));
        }
        else
        {
            if (Given(r, ResumeFrom) || r.GetValue(AllowDataChange))
                throw new BadInputException($"{Settings.Run.ResumeFrom} and {Settings.Run.AllowDataChange} only make sense with {Settings.Run.Resume.Is("DIR")}.");
            var config = ToConfig(r, models, DateTimeOffset.Now);
            result = ConsoleListeners.Run(console, listener => TrainingRun.Train(config, new TrainOptions { RunsDirectory = r.GetValue(RunsDir)!, Callbacks = [listener], Loggers = loggers }, stop.Token));
        }
        int exit = Report(result, r.CommandResult.Command, console);
        string report = Path.Combine(result.Directory, "report.html");
        if (File.Exists(report)) console.MarkupLineInterpolated($"  report: {report}");
        return exit;
    }

    private static int Report(RunResult result, Command command, IAnsiConsole console)
    {
        string Text(SettingText? message) => message is null ? "" : SettingFlags.Render(message, command);
        switch (result.Outcome)
        {
            case RunOutcome.Completed:
                var v = result.Validation;
                console.MarkupLineInterpolated($"[green]done[/] after {result.Step} steps → {result.Directory}");
                if (v is not null)
                    console.MarkupLineInterpolated($"  validation: loss {v.Loss:F2}  reconstruction {v.Reconstruction:F2}{ConsoleListeners.Terms(v.Values, "  ")}  mse {v.Mse:F5}  psnr {v.Psnr:F2} dB  (best loss {result.BestLoss:F2})");
                console.MarkupLineInterpolated($"  images: {Path.Combine(result.Directory, "images")}   TensorBoard: tensorboard --logdir {Path.Combine(result.Directory, "tensorboard")}");
                return ExitCodes.Ok;
            case RunOutcome.Interrupted:
                console.MarkupLineInterpolated($"[yellow]{Text(result.Message)} Continue with: vae train --resume {result.Directory}[/]");
                return ExitCodes.Interrupted;
            default:
                console.MarkupLineInterpolated($"[red]{Text(result.Message)}[/]");
                return ExitCodes.Failure;
        }
    }

    private static bool Given(ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>The options --resume takes: its own, those that set a key of <see cref="ResumeOptions.Changeable"/>, W&amp;B's.</summary>
    private static bool TakenByResume(Option option) =>
        option == Resume || option == ResumeFrom || option == AllowDataChange || option.Name.StartsWith("--wandb", StringComparison.Ordinal) ||
        SettingFlags.KeyOf(option) is SettingKey key && ResumeOptions.Changeable.Contains(key);

    private static void WarnIgnoredWithResume(ParseResult r, IAnsiConsole console)
    {
        var ignored = r.CommandResult.Children.OfType<System.CommandLine.Parsing.OptionResult>()
            .Where(o => !o.Implicit && !TakenByResume(o.Option))
            .Select(o => o.Option.Name).ToList();
        if (ignored.Count > 0)
            console.MarkupLineInterpolated($"[yellow]--resume continues with the run's stored settings; ignoring {string.Join(", ", ignored)}[/]");
    }
}
