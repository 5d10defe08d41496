using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Imaging;
using static TorchSharp.torch;

namespace VaeKit.Training;

public enum RunOutcome { Completed, Interrupted, Diverged }

public sealed record RunResult(RunOutcome Outcome, string Directory, long Step, EvalMetrics? Validation, double? BestLoss, string? Message);

/// <summary>What <c>vae train --resume</c> may change: hardware, the epoch total, and which checkpoint to start from.</summary>
public sealed record ResumeOptions
{
    public required string RunDirectory { get; init; }
    /// <summary>"last" (default), "best", or a checkpoint file of the same run.</summary>
    public string From { get; init; } = "last";
    /// <summary>The data's new location when it moved; the fingerprint check still applies.</summary>
    public string? Data { get; init; }
    /// <summary>A larger total epoch count to extend a run; null = as stored.</summary>
    public int? Epochs { get; init; }
    public string? Device { get; init; }
    public int? Threads { get; init; }
    /// <summary>Training arithmetic from here on; null = as stored.</summary>
    public Precision? Precision { get; init; }
    /// <summary>Continue although the data's fingerprint differs from the one recorded at the start.</summary>
    public bool AllowDataChange { get; init; }
}

/// <summary>
/// A whole <c>vae train</c>: loads the data, creates or resumes runs/NAME/, and runs epochs of
/// <see cref="Trainer.BatchUpdate"/> with per-epoch validation, grids, metrics, TensorBoard and checkpoints.
/// Cancellation (Ctrl-C) finishes the current step, saves "last" and returns <see cref="RunOutcome.Interrupted"/>.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private const int GridColumns = 8;
    private const int ReconstructionImages = 32;
    private const int SampleImages = 64;

    private readonly RunDirectory _dir;
    private readonly RunConfig _config;
    private readonly LoadedDataset _data;
    private readonly Trainer _trainer;
    private readonly Device _device;
    private readonly ITrainingListener _listener;
    private readonly MetricsLog _metrics;
    private readonly TorchSharp.Modules.SummaryWriter _tensorBoard;
    private readonly Tensor _sampleZ;       // fixed z ~ N(0, I): the same faces every epoch
    private readonly Tensor _gridImages;    // fixed images for the reconstruction grid
    private readonly DecodedImages? _deviceTrain;       // the images uploaded once to the GPU (uint8), when they fit
    private readonly DecodedImages? _deviceValidation;
    private readonly int _readbackEvery;            // steps between host reads of the step numbers

    private CheckpointHeader _position;
    private long? _savedStep;               // step of the last.ckpt on disk, if this session wrote or loaded one
    private readonly Stopwatch _sinceSave = Stopwatch.StartNew();
    private readonly double _elapsedBefore;

    private TrainingRun(RunDirectory dir, RunConfig config, LoadedDataset data, Trainer trainer, Device device,
                        CheckpointHeader position, ITrainingListener listener)
    {
        _dir = dir;
        _config = config;
        _data = data;
        _trainer = trainer;
        _device = device;
        _position = position;
        _savedStep = position.Step > 0 ? position.Step : null;
        _elapsedBefore = position.ElapsedSeconds;
        _listener = listener;
        _metrics = new MetricsLog(dir.Metrics);
        _tensorBoard = torch.utils.tensorboard.SummaryWriter(dir.TensorBoard);

        using var generator = new Generator((ulong)config.Train.Seed + 7919UL);
        using (var z = randn([SampleImages, config.Model.Latent], generator: generator))
            _sampleZ = z.to(device).DetachFromDisposeScope();
        var source = data.Validation.Count > 0 ? data.Validation : data.Train;
        using var first = source.Pixels.narrow(0, 0, Math.Min(ReconstructionImages, source.Count));
        _gridImages = EpochPlan.ToModelInput(first, device).DetachFromDisposeScope();

        // On a GPU the host queues work ahead of the device; reading the loss back every step would stall that queue.
        _readbackEvery = config.Runtime.ReadbackEvery ?? (device.type == DeviceType.CUDA ? DeviceReadbackEvery : 1);
        if (device.type == DeviceType.CUDA)
        {
            _deviceTrain = Upload(data.Train, "training", device, listener);
            _deviceValidation = Upload(data.Validation, "validation", device, listener);
        }
    }

    /// <summary>The images on the GPU, or null (with a message) when they do not fit beside the model: batches then
    /// cross from host memory each step.</summary>
    private static DecodedImages? Upload(DecodedImages images, string what, Device device, ITrainingListener listener)
    {
        try
        {
            return images.To(device);
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            listener.Message($"the {what} images ({images.ByteLength >> 20} MB) stay in host memory: {e.Message.Split('\n')[0]}");
            return null;
        }
    }

    /// <summary>Steps between reads of the loss on a GPU; also the delay before a NaN is noticed there.</summary>
    public const int DeviceReadbackEvery = 20;

    /// <summary>Starts a new run under <paramref name="runsRoot"/>/NAME.</summary>
    public static RunResult Train(RunConfig config, string runsRoot, ITrainingListener listener, CancellationToken cancellationToken)
    {
        // Everything that can be checked without the data is checked before minutes of decoding.
        config.Train.Validate();
        config.Data.Validate();
        (config.Model with { InChannels = config.Data.Channels ?? 3 }).Validate();
        var spec = DataSpec.Parse(config.Data.Source);
        var device = PrepareRuntime(config.Runtime);
        if (string.IsNullOrWhiteSpace(runsRoot)) throw new BadInputException("--runs-dir is empty; give a directory.");
        var dir = new RunDirectory(Path.Combine(runsRoot, config.Name));
        if (File.Exists(dir.Last))
            throw new BadInputException($"Run '{config.Name}' already exists at {dir.Path}. Continue it with --resume {dir.Path}, or pick another --name.");
        if (File.Exists(dir.Config))
            throw new BadInputException($"{dir.Path} holds a run that stopped before its first checkpoint; delete that directory or pick another --name.");
        EnsureWritable(runsRoot);

        var data = Load(config, spec, listener, cancellationToken);
        try
        {
            config = config with
            {
                Model = config.Model with { InChannels = data.Description.Channels },
                Data = config.Data with { Source = spec.ToArgument(), Fingerprint = data.Description.Fingerprint },
            };
            config.Model.Validate();
            torch.manual_seed(config.Train.Seed);    // weight initialisation; the trainer seeds the noise per step
            var model = new AutoEncoder(config.Model);
            model.to(device);
            var trainer = new Trainer(model, config.Train, TotalSteps(config.Train, data.Train.Count), config.Runtime.Precision, config.Runtime.ChannelsLast);

            try { dir.Create(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"Cannot create the run directory {dir.Path}: {e.Message}", e);
            }
            using var runLock = dir.Lock();
            WriteConfig(dir, config, data.Description, model.ParameterCount);
            var start = new CheckpointHeader { Config = config, Versions = TorchRuntime.Versions() };
            using var run = new TrainingRun(dir, config, data, trainer, device, start, listener);
            return run.Loop(resumed: false, cancellationToken);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>Continues a run from one of its checkpoints, exactly where that checkpoint stood.</summary>
    public static RunResult Resume(ResumeOptions options, ITrainingListener listener, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.RunDirectory)) throw new BadInputException("--resume needs a run directory.");
        var dir = new RunDirectory(options.RunDirectory);
        if (!Directory.Exists(dir.Path)) throw new BadInputException($"No run directory at {dir.Path}.");
        using var runLock = dir.Lock();
        string checkpoint = options.From switch
        {
            "last" => dir.Last,
            "best" => dir.Best,
            _ => Path.GetFullPath(options.From),
        };

        var stored = Checkpoint.Verify(checkpoint);
        if (checkpoint != dir.Last)
            CheckSameRun(dir, stored);
        if (options.Epochs is int epochs && epochs <= stored.Epoch)
            throw new BadInputException($"--epochs {epochs} is not more than the {stored.Epoch} epoch(s) this run has finished; give a larger total to extend it.");
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

        var data = Load(config, DataSpec.Parse(config.Data.Source), listener, cancellationToken);
        try
        {
            if (data.Description.Channels != config.Model.InChannels)
                throw new BadInputException($"The data of {dir.Path} now decodes to {data.Description.Channels} channel(s), the model takes {config.Model.InChannels}.");
            if (config.Data.Fingerprint is string expected && expected != data.Description.Fingerprint)
            {
                if (!options.AllowDataChange)
                    throw new BadInputException(
                        $"The data ({config.Data.Source}) changed since this run started (fingerprint {data.Description.Fingerprint}, " +
                        $"was {expected}): the resumed run would see other batches. Pass --allow-data-change to continue anyway.");
                listener.Message($"warning: training continues on changed data ({data.Description.Fingerprint}, was {expected})");
                config = config with { Data = config.Data with { Fingerprint = data.Description.Fingerprint } };
            }

            long totalSteps = TotalSteps(config.Train, data.Train.Count);
            if (totalSteps <= stored.Step)
                throw new BadInputException(
                    $"{dir.Path} has already taken its {stored.Step} steps ({config.Train.Epochs} epochs" +
                    $"{(config.Train.MaxSteps is int max ? $", --max-steps {max}" : "")}); extend it with --epochs N larger than {config.Train.Epochs}" +
                    $"{(config.Train.MaxSteps is not null ? " (a --max-steps cap cannot be lifted: start a new run)" : "")}.");
            var (header, trainer) = Checkpoint.Load(checkpoint, config.Train, totalSteps, device, config.Runtime.Precision, config.Runtime.ChannelsLast);
            KeepRewoundLast(dir, checkpoint, header, listener);
            MetricsLog.TruncateForResume(dir.Metrics, header.Step, header.Epoch);
            if (options.Epochs is not null)
                UpdateStoredEpochs(dir, config.Train.Epochs);
            using var run = new TrainingRun(dir, config, data, trainer, device, header with { Config = config }, listener);
            return run.Loop(resumed: true, cancellationToken);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    private RunResult Loop(bool resumed, CancellationToken cancellationToken)
    {
        var train = _config.Train;
        int stepsPerEpoch = EpochPlan.Count(_data.Train.Count, train.BatchSize);
        long totalSteps = _trainer.TotalSteps;
        _listener.RunStarted(new RunStart(_config.Name, _dir.Path, _device.ToString(), torch.get_num_threads(),
            _trainer.Model.ParameterCount, _data.Description, stepsPerEpoch, totalSteps, _trainer.Step, resumed));
        if (resumed)
            _metrics.Write(new JsonObject { ["type"] = "resume", ["step"] = _trainer.Step, ["epoch"] = _position.Epoch + 1, ["time"] = Now() });

        var rate = new RateMeter();
        EvalMetrics? lastValidation = null;
        var pending = new List<(PendingStep Step, int Batch)>();
        for (int epoch = _position.Epoch; epoch < train.Epochs && _trainer.Step < totalSteps; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            using (var plan = new EpochPlan(_deviceTrain ?? _data.Train, train.BatchSize, train.Seed, epoch, _config.Data.Flip))
            {
                int from = _position.BatchInEpoch;
                int to = (int)Math.Min(plan.StepsPerEpoch, from + (totalSteps - _trainer.Step));
                // CPU with a core to spare: batches are assembled on a worker thread while the step runs. GPU: the
                // images already live on the device and a batch is two kernels queued behind the step.
                using var prefetch = _device.type == DeviceType.CPU && from < to && BatchPrefetcher.Useful
                    ? new BatchPrefetcher(i => plan.Batch(i, _device), from, to)
                    : null;
                for (int batch = from; batch < to; batch++)
                {
                    using (var scope = NewDisposeScope())
                    {
                        using var fetched = prefetch?.Next();             // detached: owned here
                        var x = fetched ?? plan.Batch(batch, _device);
                        if (_readbackEvery == 1)
                        {
                            try
                            {
                                var step = _trainer.BatchUpdate(x);
                                Completed([step], [batch], epoch, plan.BatchSize, rate, totalSteps);
                            }
                            catch (DivergedException e)
                            {
                                return Diverge(e, epoch, lastValidation);
                            }
                        }
                        else
                        {
                            pending.Add((_trainer.BatchUpdateDeferred(x), batch));
                        }
                    }

                    bool stopping = cancellationToken.IsCancellationRequested;
                    bool saving = _sinceSave.Elapsed.TotalMinutes >= train.CheckpointMinutes;
                    if (pending.Count >= _readbackEvery || (pending.Count > 0 && (batch + 1 == to || stopping || saving)))
                    {
                        var steps = _trainer.Resolve(pending.Select(p => p.Step).ToList(), out var divergence);
                        Completed(steps, pending.Select(p => p.Batch).Take(steps.Count).ToList(), epoch, plan.BatchSize, rate, totalSteps);
                        foreach (var (step, _) in pending) step.Dispose();
                        pending.Clear();
                        if (divergence is not null)
                            return Diverge(divergence, epoch, lastValidation);
                        stopping |= cancellationToken.IsCancellationRequested;   // a listener may have asked just now
                    }

                    if (stopping)
                    {
                        SaveLast();
                        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "interrupted", ["step"] = _trainer.Step, ["epoch"] = epoch + 1, ["time"] = Now() });
                        return new RunResult(RunOutcome.Interrupted, _dir.Path, _trainer.Step, lastValidation, _position.BestLoss,
                            $"Interrupted at step {_trainer.Step}; saved {_dir.Last}. Continue with: vae train --resume {_dir.Path}");
                    }
                    if (saving)
                        SaveLast();
                }
            }

            lastValidation = EndEpoch(epoch, epochClock.Elapsed.TotalSeconds);
            rate.Reset();   // validation time is not training throughput
        }

        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "completed", ["step"] = _trainer.Step, ["epoch"] = _position.Epoch, ["time"] = Now() });
        return new RunResult(RunOutcome.Completed, _dir.Path, _trainer.Step, lastValidation, _position.BestLoss, null);
    }

    /// <summary>Book-keeping of steps read back from the device: epoch sums, the listener, metrics rows.</summary>
    private void Completed(IReadOnlyList<StepMetrics> steps, IReadOnlyList<int> batches, int epoch, int batchSize, RateMeter rate, long totalSteps)
    {
        if (steps.Count == 0) return;
        double imagesPerSecond = rate.Tick(batchSize * steps.Count, steps.Count);
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            _position = _position with
            {
                Step = step.Step, Epoch = epoch, BatchInEpoch = batches[i] + 1,
                EpochLossSum = _position.EpochLossSum + step.Loss,
                EpochReconstructionSum = _position.EpochReconstructionSum + step.Reconstruction,
                EpochKlSum = _position.EpochKlSum + step.Kl,
                EpochSteps = _position.EpochSteps + 1,
            };
            TimeSpan? eta = rate.SecondsPerStep is double s ? TimeSpan.FromSeconds(s * (totalSteps - step.Step)) : null;
            _listener.StepCompleted(new StepReport(epoch + 1, batches[i] + 1, step, imagesPerSecond, eta));
            if (step.Step % _config.Train.LogEvery == 0)
                LogStep(step, epoch + 1, imagesPerSecond);
        }
    }

    private RunResult Diverge(DivergedException e, int epoch, EvalMetrics? lastValidation)
    {
        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "diverged", ["step"] = _position.Step + 1, ["epoch"] = epoch + 1, ["time"] = Now() });
        string kept = _savedStep is long saved
            ? $" The last good checkpoint is {_dir.Last} (step {saved}); --resume keeps the stored settings, so start a new run to change them."
            : "";
        return new RunResult(RunOutcome.Diverged, _dir.Path, _position.Step, lastValidation, _position.BestLoss, e.Message + kept);
    }

    /// <summary>Validation, grids, the epoch row, "best" when it improved, and "last" at the epoch boundary.</summary>
    private EvalMetrics? EndEpoch(int epoch, double seconds)
    {
        int n = Math.Max(1, _position.EpochSteps);
        double trainLoss = _position.EpochLossSum / n;
        EvalMetrics? validation = _data.Validation.Count > 0 ? Evaluate(_deviceValidation ?? _data.Validation) : null;
        double score = validation?.Loss ?? trainLoss;
        bool isBest = _position.EpochSteps > 0 && (_position.BestLoss is not double best || score < best);

        string reconstructionGrid = _dir.ReconstructionGrid(epoch + 1), sampleGrid = _dir.SampleGrid(epoch + 1);
        WriteGrids(reconstructionGrid, sampleGrid, (int)_trainer.Step);

        var row = new JsonObject
        {
            ["type"] = "epoch", ["epoch"] = epoch + 1, ["step"] = _trainer.Step,
            ["train_loss"] = trainLoss,
            ["train_reconstruction"] = _position.EpochReconstructionSum / n,
            ["train_kl"] = _position.EpochKlSum / n,
            ["kl_weight"] = _config.Train.KlWeight,
            ["seconds"] = seconds, ["time"] = Now(),
        };
        if (validation is not null)
            Record(row, "val_", "val/", _trainer.Step,
                ("loss", validation.Loss), ("reconstruction", validation.Reconstruction), ("kl", validation.Kl),
                ("mse", validation.Mse), ("psnr", validation.Psnr));
        row["best"] = isBest;
        _metrics.Write(row);

        _position = _position with
        {
            Epoch = epoch + 1, BatchInEpoch = 0,
            EpochLossSum = 0, EpochReconstructionSum = 0, EpochKlSum = 0, EpochSteps = 0,
            BestLoss = isBest ? score : _position.BestLoss,
            BestStep = isBest ? _trainer.Step : _position.BestStep,
        };
        if (isBest)
            Checkpoint.Save(_dir.Best, Stamp(), _trainer);
        SaveLast();

        _listener.EpochCompleted(new EpochReport(epoch + 1, _config.Train.Epochs, _trainer.Step, trainLoss,
            (double)row["train_reconstruction"]!, (double)row["train_kl"]!, validation, isBest, seconds, reconstructionGrid, sampleGrid));
        return validation;
    }

    /// <summary>Metrics over a whole split with <see cref="Trainer.BatchMetrics"/>.</summary>
    public EvalMetrics Evaluate(DecodedImages images)
    {
        var sums = new MetricSums();
        int batch = _config.Train.BatchSize;
        for (int start = 0; start < images.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            var x = EpochPlan.ToModelInput(images.Pixels.narrow(0, start, Math.Min(batch, images.Count - start)), _device);
            _trainer.BatchMetrics(x, sums);
        }
        return sums.Result(_config.Train.KlWeight, _trainer.Model.IsVariational);
    }

    private void WriteGrids(string reconstructionPath, string samplePath, int step)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var model = _trainer.Model;
        model.eval();
        int scale = Math.Max(1, 64 / _config.Model.ImageSize);   // 32 px faces are drawn 2× so they can be seen
        var pairs = ImageGrid.Interleave(_gridImages, model.call(_gridImages).Reconstruction, GridColumns);
        ImageGrid.SavePng(ImageGrid.Make(pairs, GridColumns, scale: scale), reconstructionPath);
        ImageGrid.SavePng(ImageGrid.Make(model.Decode(_sampleZ), GridColumns, scale: scale), samplePath);
        _tensorBoard.add_img("images/reconstruction", reconstructionPath, step);
        _tensorBoard.add_img("images/samples", samplePath, step);
    }

    private void LogStep(StepMetrics step, int epoch, double imagesPerSecond)
    {
        var row = new JsonObject { ["type"] = "train", ["step"] = step.Step, ["epoch"] = epoch };
        Record(row, "", "train/", step.Step,
            ("loss", step.Loss), ("reconstruction", step.Reconstruction), ("kl", step.Kl), ("mse", step.Mse),
            ("psnr", step.Psnr), ("kl_weight", step.KlWeight), ("lr", step.LearningRate), ("grad_norm", step.GradNorm),
            ("img_per_sec", imagesPerSecond));
        row["time"] = Now();
        _metrics.Write(row);
    }

    /// <summary>The same numbers under one name in metrics.jsonl (key prefix) and TensorBoard (tag prefix).</summary>
    private void Record(JsonObject row, string keyPrefix, string tagPrefix, long step, params (string Name, double Value)[] values)
    {
        foreach (var (name, value) in values)
        {
            row[keyPrefix + name] = value;
            _tensorBoard.add_scalar(tagPrefix + name, (float)value, (int)step);
        }
    }

    private void SaveLast()
    {
        Checkpoint.Save(_dir.Last, Stamp(), _trainer);
        _savedStep = _trainer.Step;
        _sinceSave.Restart();
    }

    private CheckpointHeader Stamp() => _position with
    {
        SavedAt = DateTimeOffset.UtcNow,
        ElapsedSeconds = _elapsedBefore + _runClock.Elapsed.TotalSeconds,
        Versions = TorchRuntime.Versions(),
    };

    private readonly Stopwatch _runClock = Stopwatch.StartNew();

    private static double Now() => Math.Round(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0, 3);

    private static long TotalSteps(TrainConfig train, int trainImages)
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
        return device;
    }

    private static LoadedDataset Load(RunConfig config, DataSpec spec, ITrainingListener listener, CancellationToken cancellationToken)
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
        return DatasetLoader.Load(options, new Progress(listener), cancellationToken);
    }

    /// <summary>A checkpoint from elsewhere must belong to this run: same name and architecture.</summary>
    private static void CheckSameRun(RunDirectory dir, CheckpointHeader candidate)
    {
        RunConfig? own = File.Exists(dir.Last) ? Checkpoint.ReadHeader(dir.Last).Config : null;
        if (own is null && File.Exists(dir.Config))
            own = JsonSerializer.Deserialize<RunConfig>(File.ReadAllText(dir.Config), Json.Indented);
        if (own is null) return;
        if (own.Name != candidate.Config.Name ||
            JsonSerializer.Serialize(own.Model, Json.Compact) != JsonSerializer.Serialize(candidate.Config.Model, Json.Compact))
            throw new BadInputException(
                $"That checkpoint belongs to run '{candidate.Config.Name}', not to {dir.Path} ('{own.Name}'). " +
                "To branch from it, resume it in its own run directory, or copy that directory under a new name first.");
    }

    /// <summary>Resuming from an older checkpoint rewinds the run; the newer last.ckpt is kept beside it, not lost.</summary>
    private static void KeepRewoundLast(RunDirectory dir, string checkpoint, CheckpointHeader from, ITrainingListener listener)
    {
        if (checkpoint == dir.Last || !File.Exists(dir.Last)) return;
        long lastStep = Checkpoint.ReadHeader(dir.Last).Step;
        if (lastStep <= from.Step) return;
        string kept = Path.Combine(dir.Checkpoints, $"last.step-{lastStep}.ckpt");
        File.Copy(dir.Last, kept, overwrite: true);
        listener.Message($"rewinding from step {lastStep} to step {from.Step}; the newer checkpoint is kept as {kept}");
    }

    /// <summary>Fails early, with exit code 2, when runs cannot be written where asked.</summary>
    private static void EnsureWritable(string runsRoot)
    {
        try
        {
            if (File.Exists(runsRoot))
                throw new BadInputException($"--runs-dir {runsRoot} is a file; runs need a directory.");
            Directory.CreateDirectory(runsRoot);
            var probe = Path.Combine(runsRoot, $".write-test-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot write runs to {Path.GetFullPath(runsRoot)}: {e.Message}", e);
        }
    }

    /// <summary>config.json records the run's current total when --resume --epochs extends it.</summary>
    private static void UpdateStoredEpochs(RunDirectory dir, int epochs)
    {
        if (!File.Exists(dir.Config)) return;
        var node = JsonNode.Parse(File.ReadAllText(dir.Config))!.AsObject();
        if (node["train"] is JsonObject train) train["epochs"] = epochs;
        Json.WriteAllTextAtomic(dir.Config, node.ToJsonString(Json.Indented) + "\n");
    }

    private static void WriteConfig(RunDirectory dir, RunConfig config, DatasetDescription dataset, long parameters)
    {
        var node = JsonSerializer.SerializeToNode(config, Json.Indented)!.AsObject();
        node["parameters"] = parameters;
        node["dataset"] = JsonSerializer.SerializeToNode(dataset, Json.Indented);
        node["versions"] = JsonSerializer.SerializeToNode(TorchRuntime.Versions(), Json.Indented);
        node["created"] = DateTimeOffset.UtcNow.ToString("O");
        Json.WriteAllTextAtomic(dir.Config, node.ToJsonString(Json.Indented) + "\n");
    }

    public void Dispose()
    {
        _metrics.Dispose();
        _sampleZ.Dispose();
        _gridImages.Dispose();
        _deviceTrain?.Dispose();
        _deviceValidation?.Dispose();
        _trainer.Model.Dispose();
        _trainer.Dispose();
        _data.Dispose();
    }

    /// <summary>
    /// Forwards decode progress synchronously and one report at a time: the loader reports from its worker threads,
    /// and listeners are written for one caller (System.Progress would post to the thread pool, out of order).
    /// </summary>
    private sealed class Progress(ITrainingListener listener) : IProgress<DecodeProgress>
    {
        private readonly Lock _gate = new();

        public void Report(DecodeProgress value)
        {
            lock (_gate) listener.DataProgress(value);
        }
    }

    /// <summary>Images per second as an exponential moving average of step wall time.</summary>
    private sealed class RateMeter
    {
        private readonly Stopwatch _clock = new();
        public double? SecondsPerStep { get; private set; }
        private double _imagesPerSecond;

        /// <summary>Records <paramref name="steps"/> steps of <paramref name="images"/> images in all since the last tick.</summary>
        public double Tick(int images, int steps = 1)
        {
            if (!_clock.IsRunning) { _clock.Start(); return _imagesPerSecond; }
            double seconds = _clock.Elapsed.TotalSeconds / steps;
            images /= steps;
            _clock.Restart();
            SecondsPerStep = SecondsPerStep is double s ? 0.9 * s + 0.1 * seconds : seconds;
            _imagesPerSecond = images / SecondsPerStep.Value;
            return _imagesPerSecond;
        }

        public void Reset() => _clock.Reset();
    }
}
