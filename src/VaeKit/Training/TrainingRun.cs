using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>What a resume may change: hardware, the epoch total, and which checkpoint to start from.</summary>
public sealed record ResumeOptions
{
    /// <summary>The run directory to continue (runs/NAME).</summary>
    public required string RunDirectory { get; init; }
    /// <summary>"last" (default), "best", or a checkpoint file of the same run.</summary>
    public string From { get; init; } = "last";
    /// <summary>The data's new location when it moved; the fingerprint check still applies.</summary>
    public string? Data { get; init; }
    /// <summary>A larger total epoch count to extend a run; null = as stored.</summary>
    public int? Epochs { get; init; }
    /// <summary>cpu, cuda or auto; null = as stored.</summary>
    public string? Device { get; init; }
    /// <summary>libtorch intra-op threads; null = as stored.</summary>
    public int? Threads { get; init; }
    /// <summary>Training arithmetic from here on; null = as stored.</summary>
    public Precision? Precision { get; init; }
    /// <summary>Continue although the data's fingerprint differs from the one recorded at the start.</summary>
    public bool AllowDataChange { get; init; }

    /// <summary>
    /// The stored settings a resume may change (config.json keys, in the order help lists them): the one list that
    /// the CLI's help, its warning about ignored flags and the docs use. Everything else continues as stored.
    /// </summary>
    public static IReadOnlyList<SettingKey> Changeable { get; } =
        [Settings.Train.Epochs, Settings.Runtime.Device, Settings.Runtime.Threads, Settings.Runtime.Precision, Settings.Data.Source];
}

/// <summary>How a run is carried out, beyond its <see cref="RunConfig"/>: where runs go, extra callbacks, and data
/// given in memory instead of <see cref="DataConfig.Source"/>.</summary>
public sealed record TrainOptions
{
    /// <summary>New runs go to RUNS/NAME.</summary>
    public string RunsDirectory { get; init; } = "runs";

    /// <summary>Hooks into the run (progress, early stopping, …), called after the loggers hear of each event. One that
    /// also implements <see cref="IRunLogger"/> gets the rows too, as if it were in <see cref="Loggers"/>.</summary>
    public IReadOnlyList<IRunCallback> Callbacks { get; init; } = [];

    /// <summary>Extra outputs for the run's numbers, after metrics.jsonl and TensorBoard and before report.html.</summary>
    public IReadOnlyList<IRunLogger> Loggers { get; init; } = [];

    /// <summary>Images to train on instead of loading <see cref="DataConfig.Source"/> (e.g.
    /// <c>LoadedDataset.FromImages</c>); the caller keeps ownership. A resume needs the same images again
    /// (their fingerprint is checked).</summary>
    public LoadedDataset? Data { get; init; }
}

/// <summary>
/// Training as a library call: <see cref="Train(RunConfig, TrainOptions, CancellationToken)"/> starts runs/NAME/,
/// <see cref="Resume(ResumeOptions, TrainOptions, CancellationToken)"/> continues one exactly where a checkpoint stood. Both check everything that can be checked
/// before minutes of data loading, build the model through <see cref="ModelFactory"/>, and run the
/// <see cref="TrainingLoop"/> with the standard outputs as callbacks. Cancellation (Ctrl-C) finishes the current step,
/// saves "last" and returns <see cref="RunOutcome.Interrupted"/>.
/// </summary>
public static class TrainingRun
{
    /// <summary>Steps between reads of the loss on a GPU; also the delay before a NaN is noticed there.</summary>
    public const int DeviceReadbackEvery = TrainingLoop.DeviceReadbackEvery;

    /// <summary>Starts a new run under <paramref name="runsRoot"/>/NAME with one extra callback.</summary>
    public static RunResult Train(RunConfig config, string runsRoot, IRunCallback callback, CancellationToken cancellationToken) =>
        Train(config, new TrainOptions { RunsDirectory = runsRoot, Callbacks = [callback] }, cancellationToken);

    /// <summary>Starts a new run under <see cref="TrainOptions.RunsDirectory"/>/NAME.</summary>
    public static RunResult Train(RunConfig config, TrainOptions options, CancellationToken cancellationToken)
    {
        // Everything that can be checked without the data is checked before minutes of decoding.
        config.Train.Validate();
        config.Data.Validate();
        ModelFactory.Validate(config.Model with { InChannels = options.Data?.Description.Channels ?? config.Data.Channels ?? 3 });
        var spec = options.Data is null ? DataSpec.Parse(config.Data.Source) : null;
        var device = PrepareRuntime(config.Runtime);
        var dir = RunStore.Plan(options.RunsDirectory, config.Name);
        var callbacks = Compose(options);

        var data = options.Data ?? Load(config, spec!, callbacks, cancellationToken);
        try
        {
            var family = ModelFactory.Family(config.Model);
            config = config with
            {
                Model = ModelFactory.Validate(config.Model with
                {
                    InChannels = data.Description.Channels,
                    Assembly = family.GetType().Assembly == typeof(ModelFactory).Assembly ? null : family.GetType().Assembly.Location,
                }),
                Data = config.Data with { Source = spec?.ToArgument() ?? data.Description.Source, Fingerprint = data.Description.Fingerprint },
            };
            manual_seed(config.Train.Seed);    // weight initialisation; the trainer seeds the noise per step
            var model = ModelFactory.Create(config.Model);
            model.to(device);
            using var trainer = new Trainer(model, config.Train, TotalSteps(config.Train, data.Train.Count), config.Runtime.Precision, config.Runtime.ChannelsLast);
            using var store = RunStore.Create(dir, config, data.Description, model.ParameterCount);
            var start = new CheckpointHeader { Config = config, Versions = TorchRuntime.Versions() };
            return Run(store, config, data, trainer, device, start, callbacks, resumed: false, cancellationToken);
        }
        finally
        {
            if (options.Data is null) data.Dispose();
        }
    }

    /// <summary>Continues a run from one of its checkpoints with one extra callback.</summary>
    public static RunResult Resume(ResumeOptions options, IRunCallback callback, CancellationToken cancellationToken) =>
        Resume(options, new TrainOptions { Callbacks = [callback] }, cancellationToken);

    /// <summary>Continues a run from one of its checkpoints, exactly where that checkpoint stood.</summary>
    public static RunResult Resume(ResumeOptions options, TrainOptions with, CancellationToken cancellationToken)
    {
        var (store, checkpoint, stored) = RunStore.OpenForResume(options.RunDirectory, options.From);
        using var _ = store;
        if (options.Epochs is int epochs && epochs <= stored.Epoch)
            throw new BadInputException($"{Settings.Train.Epochs} {epochs} is not more than the {stored.Epoch} epoch(s) this run has finished; give a larger total to extend it.");
        var config = stored.Config with
        {
            Data = options.Data is string moved ? stored.Config.Data with { Source = moved } : stored.Config.Data,
            Runtime = stored.Config.Runtime with
            {
                Device = options.Device ?? stored.Config.Runtime.Device,
                Threads = options.Threads ?? stored.Config.Runtime.Threads,
                Precision = options.Precision ?? stored.Config.Runtime.Precision,
            },
            Train = options.Epochs is int e ? stored.Config.Train with { Epochs = e } : stored.Config.Train,
        };
        config.Train.Validate();
        var device = PrepareRuntime(config.Runtime);
        var callbacks = Compose(with);

        var data = with.Data ?? Load(config, DataSpec.Parse(config.Data.Source), callbacks, cancellationToken);
        try
        {
            if (data.Description.Channels != config.Model.InChannels)
                throw new BadInputException($"The data of {store.Directory.Path} now decodes to {data.Description.Channels} channel(s), the model takes {config.Model.InChannels}.");
            if (config.Data.Fingerprint is string expected && expected != data.Description.Fingerprint)
            {
                if (!options.AllowDataChange)
                    throw new BadInputException(
                        $"The data ({config.Data.Source}) changed since this run started (fingerprint {data.Description.Fingerprint}, " +
                        $"was {expected}): the resumed run would see other batches. Allow a data change ({Settings.Run.AllowDataChange}) to continue anyway.");
                callbacks.Warning($"training continues on changed data ({data.Description.Fingerprint}, was {expected})");
                config = config with { Data = config.Data with { Fingerprint = data.Description.Fingerprint } };
            }

            long totalSteps = TotalSteps(config.Train, data.Train.Count);
            if (totalSteps <= stored.Step)
            {
                string done = $"{store.Directory.Path} has already taken its {stored.Step} steps ({config.Train.Epochs} epochs";
                throw config.Train.MaxSteps is int max
                    ? new BadInputException($"{done}, {Settings.Train.MaxSteps} {max}); extend it with {Settings.Train.Epochs} larger than {config.Train.Epochs} (a {Settings.Train.MaxSteps} cap cannot be lifted: start a new run).")
                    : new BadInputException($"{done}); extend it with {Settings.Train.Epochs} larger than {config.Train.Epochs}.");
            }
            var (header, trainer) = Checkpoint.Load(checkpoint, config.Train, totalSteps, device, config.Runtime.Precision, config.Runtime.ChannelsLast);
            using (trainer)
            {
                if (store.PrepareResume(checkpoint, header, options.Epochs) is string notice)
                    callbacks.Message(notice);
                return Run(store, config, data, trainer, device, header with { Config = config }, callbacks, resumed: true, cancellationToken);
            }
        }
        finally
        {
            if (with.Data is null) data.Dispose();
        }
    }

    /// <summary>The loggers (metrics.jsonl, TensorBoard, the caller's, then report.html, which reads metrics.jsonl), then
    /// the caller's callbacks. The epoch grids and the checkpoints are the loop's own work, done before either hears of
    /// the epoch.</summary>
    private static CallbackList Compose(TrainOptions options)
    {
        IRunLogger[] callers = [.. options.Loggers.Concat(options.Callbacks.OfType<IRunLogger>()).Distinct()];
        var loggers = new RunLoggers([new MetricsFile(), new TensorBoardLogger(), .. callers, new HtmlReportWriter()]);
        return new([loggers, .. options.Callbacks]);
    }

    private static RunResult Run(RunStore store, RunConfig config, LoadedDataset data, Trainer trainer, Device device,
                                 CheckpointHeader position, CallbackList callbacks, bool resumed, CancellationToken cancellationToken)
    {
        // On a GPU the images are uploaded once (uint8) and batches are drawn there; host memory when they do not fit.
        using var train = device.type == DeviceType.CUDA ? Upload(data.Train, "training", device, callbacks) : null;
        using var validation = device.type == DeviceType.CUDA ? Upload(data.Validation, "validation", device, callbacks) : null;
        try
        {
            var loop = new TrainingLoop(store, config, trainer, device, data, train ?? data.Train, validation ?? data.Validation,
                                        position, [callbacks], resumed);
            return loop.Run(cancellationToken);
        }
        finally
        {
            trainer.Model.Dispose();
        }
    }

    private static DecodedImages? Upload(DecodedImages images, string what, Device device, IRunCallback callbacks)
    {
        try
        {
            return images.To(device);
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            callbacks.Message($"the {what} images ({images.ByteLength >> 20} MB) stay in host memory: {e.Message.Split('\n')[0]}");
            return null;
        }
    }

    /// <summary>Optimizer steps of a run: epochs × full batches per epoch, capped by max_steps.</summary>
    public static long TotalSteps(TrainConfig train, int trainImages)
    {
        long steps = (long)train.Epochs * EpochPlan.Count(trainImages, train.BatchSize);
        return train.MaxSteps is int max ? Math.Min(steps, max) : steps;
    }

    private static Device PrepareRuntime(RuntimeConfig runtime)
    {
        runtime.Validate();
        TorchRuntime.SetThreads(runtime.Threads);
        var device = TorchRuntime.ResolveDevice(runtime.Device);
        TorchRuntime.SetTf32(device, runtime.Tf32);
        TorchRuntime.SetDeterminism(device, runtime.Deterministic, runtime.CudnnBenchmark);   // issue 13: --deterministic
        return device;
    }

    private static LoadedDataset Load(RunConfig config, DataSpec spec, IRunCallback callbacks, CancellationToken cancellationToken)
    {
        var options = new DataOptions
        {
            Source = spec,
            ImageSize = config.Model.ImageSize,
            Channels = config.Data.Channels,
            ValidationFraction = config.Data.ValidationFraction,
            Seed = DataConfig.SplitSeed,
            CacheDirectory = config.Data.CacheDirectory,
        };
        return DatasetLoader.Load(options, new Progress(callbacks), cancellationToken);
    }

    /// <summary>
    /// Forwards decode progress synchronously and one report at a time: the loader reports from its worker threads,
    /// and callbacks are written for one caller (System.Progress would post to the thread pool, out of order).
    /// </summary>
    private sealed class Progress(IRunCallback callbacks) : IProgress<DecodeProgress>
    {
        private readonly Lock _gate = new();

        public void Report(DecodeProgress value)
        {
            lock (_gate) callbacks.DataProgress(value);
        }
    }
}
