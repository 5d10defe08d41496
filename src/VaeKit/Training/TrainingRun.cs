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

    private CheckpointHeader _position;
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
        _elapsedBefore = position.ElapsedSeconds;
        _listener = listener;
        _metrics = new MetricsLog(dir.Metrics);
        _tensorBoard = torch.utils.tensorboard.SummaryWriter(dir.TensorBoard);

        var generator = new Generator((ulong)config.Train.Seed + 7919UL);
        _sampleZ = randn([SampleImages, config.Model.Latent], generator: generator).to(device).DetachFromDisposeScope();
        var source = data.Validation.Count > 0 ? data.Validation : data.Train;
        using var first = source.Pixels.narrow(0, 0, Math.Min(ReconstructionImages, source.Count));
        _gridImages = EpochPlan.ToModelInput(first, device).DetachFromDisposeScope();
    }

    /// <summary>Starts a new run under <paramref name="runsRoot"/>/NAME.</summary>
    public static RunResult Train(RunConfig config, string runsRoot, ITrainingListener listener, CancellationToken cancellationToken)
    {
        config.Train.Validate();
        config.Data.Validate();
        var dir = new RunDirectory(Path.Combine(runsRoot, config.Name));
        if (File.Exists(dir.Config) || File.Exists(dir.Last))
            throw new BadInputException($"Run '{config.Name}' already exists at {dir.Path}. Continue it with --resume {dir.Path}, or pick another --name.");

        var device = PrepareRuntime(config.Runtime);
        var data = Load(config, listener, cancellationToken);
        try
        {
            config = config with { Model = config.Model with { InChannels = data.Description.Channels } };
            config.Model.Validate();
            torch.manual_seed(config.Train.Seed);    // weight init and the reparameterisation noise
            var model = new AutoEncoder(config.Model);
            model.to(device);
            var trainer = new Trainer(model, config.Train, TotalSteps(config.Train, data.Train.Count));

            dir.Create();
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

    /// <summary>Continues runs/NAME from checkpoints/last.ckpt, exactly where it stopped.</summary>
    /// <param name="runtime">Device/threads for this session (not part of the experiment); null = as stored.</param>
    /// <param name="epochs">A new total epoch count to extend a finished run; null = as stored.</param>
    public static RunResult Resume(string runDirectory, RuntimeConfig? runtime, int? epochs, ITrainingListener listener, CancellationToken cancellationToken)
    {
        var dir = new RunDirectory(runDirectory);
        if (!Directory.Exists(dir.Path)) throw new BadInputException($"No run directory at {dir.Path}.");
        if (!File.Exists(dir.Last)) throw new BadInputException($"{dir.Path} has no checkpoints/last.ckpt to resume from.");

        var stored = Checkpoint.ReadHeader(dir.Last);
        var config = stored.Config with
        {
            Runtime = runtime ?? stored.Config.Runtime,
            Train = epochs is int e ? stored.Config.Train with { Epochs = e } : stored.Config.Train,
        };
        config.Train.Validate();
        var device = PrepareRuntime(config.Runtime);
        var data = Load(config, listener, cancellationToken);
        try
        {
            if (data.Description.Channels != config.Model.InChannels || data.Description.ImageSize != config.Model.ImageSize)
                throw new BadInputException($"The data of {dir.Path} no longer decodes to {config.Model.ImageSize} px × {config.Model.InChannels} channels.");
            var (header, trainer) = Checkpoint.Load(dir.Last, _ => TotalSteps(config.Train, data.Train.Count));
            trainer.Model.to(device);
            MetricsLog.TruncateForResume(dir.Metrics, header.Step, header.Epoch);
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
            _metrics.Write(new JsonObject { ["type"] = "resume", ["step"] = _trainer.Step, ["epoch"] = _position.Epoch, ["time"] = Now() });

        var rate = new RateMeter();
        EvalMetrics? lastValidation = null;
        for (int epoch = _position.Epoch; epoch < train.Epochs && _trainer.Step < totalSteps; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            using (var plan = new EpochPlan(_data.Train, train.BatchSize, train.Seed, epoch, _config.Data.Flip))
            {
                for (int batch = _position.BatchInEpoch; batch < plan.StepsPerEpoch && _trainer.Step < totalSteps; batch++)
                {
                    StepMetrics step;
                    try
                    {
                        using var scope = NewDisposeScope();
                        step = _trainer.BatchUpdate(plan.Batch(batch, _device));
                    }
                    catch (DivergedException e)
                    {
                        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "diverged", ["step"] = _trainer.Step + 1, ["epoch"] = epoch + 1, ["time"] = Now() });
                        string kept = File.Exists(_dir.Last) ? $" The last good checkpoint is {_dir.Last} (step {_position.Step})." : "";
                        return new RunResult(RunOutcome.Diverged, _dir.Path, _trainer.Step, lastValidation, _position.BestLoss, e.Message + kept);
                    }

                    _position = _position with
                    {
                        Step = _trainer.Step, Epoch = epoch, BatchInEpoch = batch + 1,
                        EpochLossSum = _position.EpochLossSum + step.Loss,
                        EpochReconstructionSum = _position.EpochReconstructionSum + step.Reconstruction,
                        EpochKlSum = _position.EpochKlSum + step.Kl,
                        EpochSteps = _position.EpochSteps + 1,
                    };
                    double imagesPerSecond = rate.Tick(plan.BatchSize);
                    TimeSpan? eta = rate.SecondsPerStep is double s ? TimeSpan.FromSeconds(s * (totalSteps - _trainer.Step)) : null;
                    _listener.StepCompleted(new StepReport(epoch + 1, batch + 1, step, imagesPerSecond, eta));
                    if (step.Step % train.LogEvery == 0)
                        LogStep(step, epoch + 1, imagesPerSecond);

                    if (cancellationToken.IsCancellationRequested)
                    {
                        SaveLast();
                        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "interrupted", ["step"] = _trainer.Step, ["epoch"] = epoch + 1, ["time"] = Now() });
                        return new RunResult(RunOutcome.Interrupted, _dir.Path, _trainer.Step, lastValidation, _position.BestLoss,
                            $"Interrupted at step {_trainer.Step}; saved {_dir.Last}. Continue with: vae train --resume {_dir.Path}");
                    }
                    if (_sinceSave.Elapsed.TotalMinutes >= train.CheckpointMinutes)
                        SaveLast();
                }
            }

            lastValidation = EndEpoch(epoch, epochClock.Elapsed.TotalSeconds);
            rate.Reset();   // validation time is not training throughput
        }

        _metrics.Write(new JsonObject { ["type"] = "stop", ["reason"] = "completed", ["step"] = _trainer.Step, ["epoch"] = _position.Epoch, ["time"] = Now() });
        return new RunResult(RunOutcome.Completed, _dir.Path, _trainer.Step, lastValidation, _position.BestLoss, null);
    }

    /// <summary>Validation, grids, the epoch row, "best" when it improved, and "last" at the epoch boundary.</summary>
    private EvalMetrics? EndEpoch(int epoch, double seconds)
    {
        int n = Math.Max(1, _position.EpochSteps);
        double trainLoss = _position.EpochLossSum / n;
        EvalMetrics? validation = _data.Validation.Count > 0 ? Evaluate(_data.Validation) : null;
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
        {
            row["val_loss"] = validation.Loss;
            row["val_reconstruction"] = validation.Reconstruction;
            row["val_kl"] = validation.Kl;
            row["val_mse"] = validation.Mse;
            row["val_psnr"] = validation.Psnr;
            int step = (int)_trainer.Step;
            _tensorBoard.add_scalar("val/loss", (float)validation.Loss, step);
            _tensorBoard.add_scalar("val/reconstruction", (float)validation.Reconstruction, step);
            _tensorBoard.add_scalar("val/kl", (float)validation.Kl, step);
            _tensorBoard.add_scalar("val/mse", (float)validation.Mse, step);
            _tensorBoard.add_scalar("val/psnr", (float)validation.Psnr, step);
        }
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
        _metrics.Write(new JsonObject
        {
            ["type"] = "train", ["step"] = step.Step, ["epoch"] = epoch,
            ["loss"] = step.Loss, ["reconstruction"] = step.Reconstruction, ["kl"] = step.Kl,
            ["mse"] = step.Mse, ["psnr"] = step.Psnr, ["kl_weight"] = step.KlWeight, ["lr"] = step.LearningRate,
            ["grad_norm"] = step.GradNorm, ["img_per_sec"] = imagesPerSecond, ["time"] = Now(),
        });
        int s = (int)step.Step;
        _tensorBoard.add_scalar("train/loss", (float)step.Loss, s);
        _tensorBoard.add_scalar("train/reconstruction", (float)step.Reconstruction, s);
        _tensorBoard.add_scalar("train/kl", (float)step.Kl, s);
        _tensorBoard.add_scalar("train/mse", (float)step.Mse, s);
        _tensorBoard.add_scalar("train/psnr", (float)step.Psnr, s);
        _tensorBoard.add_scalar("train/kl_weight", (float)step.KlWeight, s);
        _tensorBoard.add_scalar("train/lr", (float)step.LearningRate, s);
        _tensorBoard.add_scalar("train/img_per_sec", (float)imagesPerSecond, s);
    }

    private void SaveLast()
    {
        Checkpoint.Save(_dir.Last, Stamp(), _trainer);
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
        TorchRuntime.SetThreads(runtime.Threads);
        return TorchRuntime.ResolveDevice(runtime.Device);
    }

    private static LoadedDataset Load(RunConfig config, ITrainingListener listener, CancellationToken cancellationToken)
    {
        var options = new DataOptions
        {
            Source = DataSpec.Parse(config.Data.Source),
            ImageSize = config.Model.ImageSize,
            Channels = config.Data.Channels,
            ValidationFraction = config.Data.ValidationFraction,
            Seed = config.Train.Seed,
            CacheDirectory = config.Data.CacheDirectory,
        };
        return DatasetLoader.Load(options, new Progress(listener), cancellationToken);
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
        _trainer.Model.Dispose();
        _trainer.Dispose();
        _data.Dispose();
    }

    /// <summary>Forwards decode progress synchronously (System.Progress would post to the thread pool out of order).</summary>
    private sealed class Progress(ITrainingListener listener) : IProgress<DecodeProgress>
    {
        public void Report(DecodeProgress value) => listener.DataProgress(value);
    }

    /// <summary>Images per second as an exponential moving average of step wall time.</summary>
    private sealed class RateMeter
    {
        private readonly Stopwatch _clock = new();
        public double? SecondsPerStep { get; private set; }
        private double _imagesPerSecond;

        public double Tick(int images)
        {
            if (!_clock.IsRunning) { _clock.Start(); return _imagesPerSecond; }
            double seconds = _clock.Elapsed.TotalSeconds;
            _clock.Restart();
            SecondsPerStep = SecondsPerStep is double s ? 0.9 * s + 0.1 * seconds : seconds;
            _imagesPerSecond = images / SecondsPerStep.Value;
            return _imagesPerSecond;
        }

        public void Reset() => _clock.Reset();
    }
}
