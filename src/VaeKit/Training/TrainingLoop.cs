using System.Diagnostics;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>How a run ended.</summary>
public enum RunOutcome
{
    /// <summary>All epochs (or max_steps) ran.</summary>
    Completed,
    /// <summary>Stopped on request (Ctrl-C, cancellation or <see cref="RunContext.RequestStop"/>) after saving "last"; resumable.</summary>
    Interrupted,
    /// <summary>The loss became NaN or infinite; the last good checkpoint on disk is kept.</summary>
    Diverged,
    /// <summary>An exception ended the run; <see cref="RunResult"/> carries its message.</summary>
    Failed,
}

/// <summary>What <c>TrainingRun.Train</c> and <c>Resume</c> return: how the run ended, where, at which step, the last
/// validation metrics, the best score, and a message for the user (why it stopped, what is saved).</summary>
public sealed record RunResult(RunOutcome Outcome, string Directory, long Step, EvalMetrics? Validation, double? BestLoss, SettingText? Message);

/// <summary>
/// The training loop: epochs of <see cref="Trainer"/> steps, validation at each epoch end, and the hooks
/// (<see cref="IRunCallback"/>) through which every output is written. It guarantees what the outputs rely on: numbers
/// reach callbacks in step order; a stop (Ctrl-C, <see cref="RunContext.RequestStop"/>) or a checkpoint request is
/// honoured only once every step taken has been read back, so a checkpoint never holds weights past a NaN; a diverged
/// run ends before anything saves its weights. On a GPU the step numbers are read back in windows of
/// <see cref="DeviceReadbackEvery"/> steps, on the CPU after every step (a NaN stops the run before the optimizer
/// touches the weights).
/// </summary>
internal sealed class TrainingLoop
{
    /// <summary>Steps between reads of the loss on a GPU; also the delay before a NaN is noticed there.</summary>
    public const int DeviceReadbackEvery = 20;

    private readonly RunStore _store;
    private readonly RunConfig _config;
    private readonly CallbackList _callbacks;   // the loggers (metrics.jsonl, TensorBoard, …, report.html), then the caller's
    private EpochGrids? _grids;
    private readonly long _totalSteps;
    private readonly int _readbackEvery;
    private readonly Stopwatch _runClock = Stopwatch.StartNew();
    private readonly Stopwatch _sinceSave = Stopwatch.StartNew();     // since "last" was written: the timed checkpoint
    private readonly double _elapsedBefore;

    public TrainingLoop(RunStore store, RunConfig config, Trainer trainer, Device device, Data.LoadedDataset data,
                        Data.DecodedImages train, Data.DecodedImages validation, CheckpointHeader position,
                        IEnumerable<IRunCallback> callbacks, bool resumed)
    {
        _store = store;
        _config = config;
        Trainer = trainer;
        Position = position;
        _elapsedBefore = position.ElapsedSeconds;
        _totalSteps = trainer.TotalSteps;
        _readbackEvery = config.Runtime.ReadbackEvery ?? (device.type == DeviceType.CUDA ? DeviceReadbackEvery : 1);
        Context = new RunContext(this, store, config, trainer.Model, device, data, train, validation, resumed)
        {
            LastSavedStep = position.Step > 0 ? position.Step : null,
        };
        _callbacks = new CallbackList([.. callbacks]);
    }

    public Trainer Trainer { get; }

    /// <summary>What the family's hooks work on: the training images, batch size and device.</summary>
    private TrainingImages FamilyImages => new(Context.TrainImages, _config.Train.BatchSize, Context.Device);
    public CheckpointHeader Position { get; private set; }
    public RunContext Context { get; }

    public RunResult Run(CancellationToken cancellationToken)
    {
        var train = _config.Train;
        var data = Context.Data;
        _callbacks.RunStarted(new RunStart(_config.Name, _store.Directory.Path, Context.Device.ToString(), get_num_threads(),
            Trainer.Model.ParameterCount, data.Description, EpochPlan.Count(data.Train.Count, train.BatchSize), _totalSteps,
            Trainer.Step, Context.Resumed)
        { Context = Context });
        var rate = new RateMeter();
        EvalMetrics? validation = null;
        using var grids = _grids = new EpochGrids(Context);
        try
        {
            for (int epoch = Position.Epoch; epoch < train.Epochs && Trainer.Step < _totalSteps; epoch++)
            {
                var clock = Stopwatch.StartNew();
                if (TrainEpoch(epoch, rate, validation, cancellationToken) is RunEnd stopped)
                    return End(stopped);
                validation = EndEpoch(epoch, clock.Elapsed.TotalSeconds);
                rate.Reset();   // validation time is not training throughput
            }
            return End(new RunEnd(RunOutcome.Completed, Trainer.Step, Position.Epoch, validation, Position.BestLoss, null));
        }
        catch (Exception e) when (GpuMemory.IsOutOfMemory(e))   // issue 13: one clear message instead of a CUDA stack trace
        {
            return End(new RunEnd(RunOutcome.Failed, Trainer.Step, Position.Epoch, validation, Position.BestLoss, OutOfMemory()));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _callbacks.RunEnded(new RunEnd(RunOutcome.Failed, Position.Step, Position.Epoch, validation, Position.BestLoss, SettingText.Plain(e.Message)));
            throw;
        }
    }

    /// <summary>One epoch's steps; a <see cref="RunEnd"/> when the run stops inside it, null when the epoch ran through.</summary>
    private RunEnd? TrainEpoch(int epoch, RateMeter rate, EvalMetrics? validation, CancellationToken cancellationToken)
    {
        var train = _config.Train;
        var device = Context.Device;
        using var plan = new EpochPlan(Context.TrainImages, train.BatchSize, train.Seed, epoch, _config.Data.Flip);
        int from = Position.BatchInEpoch;
        int to = (int)Math.Min(plan.StepsPerEpoch, from + (_totalSteps - Trainer.Step));
        // CPU with a core to spare: batches are assembled on a worker thread while the step runs. GPU: the images
        // already live on the device and a batch is two kernels queued behind the step.
        using var prefetch = device.type == DeviceType.CPU && from < to && BatchPrefetcher.Useful
            ? new BatchPrefetcher(i => plan.Batch(i, device), from, to)
            : null;
        var pending = new List<(PendingStep Step, int Batch)>();
        for (int batch = from; batch < to; batch++)
        {
            using (var scope = NewDisposeScope())
            {
                using var fetched = prefetch?.Next();             // detached: owned here
                var x = fetched ?? plan.Batch(batch, device);
                pending.Add((Trainer.BatchUpdateDeferred(x, checkFirst: _readbackEvery == 1), batch));
            }
            bool stopping = cancellationToken.IsCancellationRequested || Context.StopReason is not null;
            bool checkpointDue = Context.CheckpointRequested || _sinceSave.Elapsed.TotalMinutes >= train.CheckpointMinutes;
            if (pending.Count >= _readbackEvery || batch + 1 == to || stopping || checkpointDue)
            {
                var divergence = ReadBack(pending, epoch, plan.BatchSize, rate);
                if (divergence is not null)
                    return Diverged(divergence, epoch, validation);
                stopping |= cancellationToken.IsCancellationRequested || Context.StopReason is not null;   // a callback may have asked just now
                checkpointDue |= Context.CheckpointRequested;
            }
            if (stopping)
                return new RunEnd(RunOutcome.Interrupted, Trainer.Step, epoch + 1, validation, Position.BestLoss, Context.StopReason is string why ? SettingText.Plain(why) : null);
            if (checkpointDue)                                  // every step read back: the weights are finite
                Save("last");
        }
        return null;
    }

    /// <summary>Reads pending steps back in one transfer and reports them; the first non-finite step, if any.</summary>
    private DivergedException? ReadBack(List<(PendingStep Step, int Batch)> pending, int epoch, int batchSize, RateMeter rate)
    {
        var steps = StepReadback.Resolve(pending.Select(p => p.Step).ToList(), Trainer.Config, out var divergence);
        double imagesPerSecond = steps.Count > 0 ? rate.Tick(batchSize * steps.Count, steps.Count) : 0;
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            var sums = Position.EpochSums is null ? new Dictionary<string, double>() : new Dictionary<string, double>(Position.EpochSums);
            foreach (var (name, value) in step.Values)
                if (MetricNames.IsTerm(name))
                    sums[name] = sums.GetValueOrDefault(name) + value;
            Position = Position with { Step = step.Step, Epoch = epoch, BatchInEpoch = pending[i].Batch + 1, EpochSums = sums, EpochSteps = Position.EpochSteps + 1 };
            TimeSpan? eta = rate.SecondsPerStep is double s ? TimeSpan.FromSeconds(s * (_totalSteps - step.Step)) : null;
            _callbacks.StepCompleted(new StepReport(epoch + 1, pending[i].Batch + 1, step, imagesPerSecond, eta));
        }
        foreach (var (step, _) in pending) step.Dispose();
        pending.Clear();
        return divergence;
    }

    /// <summary>
    /// The end of an epoch, in this order: validation and "best" decided; the family's own work
    /// (<see cref="VaeModel.EpochEnded"/>); the epoch's grids;
    /// its checkpoints (best.ckpt when the validation loss, or the train loss without a validation split, is the
    /// lowest so far; last.ckpt always); then the outputs' callbacks (metrics rows, TensorBoard, W&amp;B, …).
    /// </summary>
    private EvalMetrics? EndEpoch(int epoch, double seconds)
    {
        int n = Math.Max(1, Position.EpochSteps);
        var trainMeans = (Position.EpochSums ?? new Dictionary<string, double>()).ToDictionary(kv => kv.Key, kv => kv.Value / n);
        MetricNames.AddDerived(trainMeans);
        var images = Context.ValidationImages;
        EvalMetrics? validation = images.Count > 0 ? ValidationPass.Evaluate(Trainer.Model, Trainer.Config.KlWeight, Trainer.Step, images, _config.Train.BatchSize, Context.Device) : null;
        double score = validation?.Loss ?? trainMeans.GetValueOrDefault(MetricNames.Loss);
        // With a discriminator, best.ckpt is chosen among the epochs that trained with it: a best from before
        // adversarial_start gives way to the first epoch after it, whatever their losses (the GAN term trades a
        // little MSE for sharpness, so a plain epoch could otherwise stay "best" and every command would read it).
        long start = _config.Train.HasDiscriminator ? _config.Train.AdversarialStart : 0;
        bool bestIsPlain = Position.BestStep is long bestStep && bestStep < start && Trainer.Step >= start;
        bool isBest = Position.EpochSteps > 0 && (Position.BestLoss is not double best || bestIsPlain || score < best);
        Position = Position with
        {
            Epoch = epoch + 1,
            BatchInEpoch = 0,
            EpochSums = null,
            EpochSteps = 0,
            BestLoss = isBest ? score : Position.BestLoss,
            BestStep = isBest ? Trainer.Step : Position.BestStep,
        };
        var report = new EpochReport(epoch + 1, _config.Train.Epochs, Trainer.Step, trainMeans, validation, isBest, seconds);
        Trainer.Model.EpochEnded(FamilyImages);          // the family's own epoch work first (the VQ-VAE fits its code prior)
        foreach (var (name, path) in _grids!.Write(epoch + 1)) report.Images[name] = path;
        if (isBest) Save("best");
        Save("last");
        _callbacks.EpochCompleted(report);               // then every output, with the grids and checkpoints on disk
        return validation;
    }

    private RunEnd Diverged(DivergedException e, int epoch, EvalMetrics? validation)
    {
        string kept = Context.LastSavedStep is long saved
            ? $" The last good checkpoint is {_store.Directory.Last} (step {saved}); a resume keeps the stored settings, so start a new run to change them."
            : "";
        return new RunEnd(RunOutcome.Diverged, Position.Step + 1, epoch + 1, validation, Position.BestLoss, e.Text.Then(SettingText.Plain(kept)));
    }

    /// <summary>An interrupted run tells the family, then saves "last" (a diverged one saves nothing: its weights are
    /// not valid); then the outputs hear how the run ended.</summary>
    private RunResult End(RunEnd end)
    {
        if (end.Outcome == RunOutcome.Interrupted)
        {
            Trainer.Model.RunInterrupted(FamilyImages);  // e.g. a VQ-VAE stopped before its first epoch fits its prior
            if (Context.LastSavedStep != Trainer.Step) Save("last");
        }
        _callbacks.RunEnded(end);
        var message = end.Message;
        if (end.Outcome == RunOutcome.Interrupted)
        {
            string saved = Context.LastSavedStep == Trainer.Step ? $"saved {_store.Directory.Last}." : "nothing was saved at that step.";
            message = message is null ? SettingText.Plain($"Interrupted at step {Trainer.Step}; {saved}")
                                      : message.Then($"; interrupted at step {Trainer.Step}; {saved}");
        }
        return new RunResult(end.Outcome, _store.Directory.Path, end.Outcome == RunOutcome.Diverged ? Position.Step : Trainer.Step,
                             end.Validation, Position.BestLoss, message);
    }

    /// <summary>Issue 13: the out-of-memory message, with the batch size the estimate says fits this GPU (NVML's total;
    /// null off NVIDIA) and the images counted when they live on the device.</summary>
    private SettingText OutOfMemory()
    {
        var device = Context.Device;
        long data = new[] { Context.TrainImages, Context.ValidationImages }.Where(i => i.Pixels.device_type == DeviceType.CUDA).Sum(i => i.ByteLength);
        long? total = device.type == DeviceType.CUDA ? Benchmarks.Machine.GpuMemoryInfo(Math.Max(0, (int)device.index))?.Total : null;
        string kept = Context.LastSavedStep is long saved ? $"; the last checkpoint is step {saved}." : ".";
        return GpuMemory.OutOfMemoryMessage(_config.Model, _config.Train.BatchSize, Trainer.Precision, total, data)
                        .Then($" Nothing was saved at this step{kept}");
    }

    public void Notify(string text) => _callbacks.Message(text);

    public void Warn(string text) => _callbacks.Warning(text);

    /// <summary>Writes checkpoint <paramref name="which"/> stamped with the current position.</summary>
    public void Save(string which)
    {
        var header = Position with
        {
            SavedAt = DateTimeOffset.UtcNow,
            ElapsedSeconds = _elapsedBefore + _runClock.Elapsed.TotalSeconds,
            Versions = TorchRuntime.Versions(),
        };
        string path = _store.SaveCheckpoint(which, header, Trainer);
        if (which == "last")
        {
            Context.LastSavedStep = Trainer.Step;
            Context.CheckpointRequested = false;
            _sinceSave.Restart();
        }
        _callbacks.CheckpointSaved(new CheckpointSaved(which, path, Trainer.Step, Position.Epoch));
    }

    /// <summary>Images per second as an exponential moving average of step wall time.</summary>
    private sealed class RateMeter
    {
        private readonly Stopwatch _clock = new();
        private double _imagesPerSecond;

        public double? SecondsPerStep { get; private set; }

        /// <summary>Records <paramref name="steps"/> steps of <paramref name="images"/> images in all since the last tick.</summary>
        public double Tick(int images, int steps)
        {
            if (!_clock.IsRunning) { _clock.Start(); return _imagesPerSecond; }
            double seconds = _clock.Elapsed.TotalSeconds / steps;
            _clock.Restart();
            SecondsPerStep = SecondsPerStep is double s ? 0.9 * s + 0.1 * seconds : seconds;
            _imagesPerSecond = images / steps / SecondsPerStep.Value;
            return _imagesPerSecond;
        }

        public void Reset() => _clock.Reset();
    }
}
