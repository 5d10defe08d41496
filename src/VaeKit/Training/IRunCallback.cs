using VaeKit.Data;

namespace VaeKit.Training;

/// <summary>
/// A hook into a training run (the outputs of a run are all callbacks: metrics.jsonl, TensorBoard, grids, checkpoints,
/// the HTML report, W&amp;B, the console). Calls come one at a time on the training thread, in the order the
/// callbacks were given (decode progress may come from worker threads, serialised); implementations must be quick.
/// <see cref="RunStarted"/> hands over the <see cref="RunContext"/>, the run's state for the rest of the hooks.
/// </summary>
public interface IRunCallback
{
    /// <summary>Decoding or cache progress before the run starts.</summary>
    void DataProgress(DecodeProgress progress) { }

    /// <summary>The run is set up (directory, model, data) and about to take its first step.</summary>
    void RunStarted(RunStart start) { }

    /// <summary>A step's numbers were read back from the device (every step on the CPU, in windows on a GPU).</summary>
    void StepCompleted(StepReport report) { }

    /// <summary>An epoch ended: validation is measured, and the epoch's grids and checkpoints are already on disk (each
    /// checkpoint reported through <see cref="CheckpointSaved"/> first).</summary>
    void EpochCompleted(EpochReport report) { }

    /// <summary>A checkpoint file was written (atomically).</summary>
    void CheckpointSaved(CheckpointSaved saved) { }

    /// <summary>The run ended: completed, interrupted (all steps read back, state consistent), diverged (the weights in
    /// memory are not valid), or failed (an exception follows).</summary>
    void RunEnded(RunEnd end) { }

    /// <summary>A notice for the user.</summary>
    void Message(string text) { }

    /// <summary>A warning for the user: something did not happen as asked, and the run goes on (a report not written,
    /// training on changed data). The text does not say "warning"; the front end does. Default: a message.</summary>
    void Warning(string text) => Message("warning: " + text);
}

/// <summary>Start of a run; <see cref="Context"/> gives callbacks the model, the data and the run directory.</summary>
public sealed record RunStart(
    string Name, string Directory, string Device, int Threads, long Parameters, DatasetDescription Dataset,
    int StepsPerEpoch, long TotalSteps, long StartStep, bool Resumed)
{
    /// <summary>The run's live state; null only for a start reported outside a run (tests).</summary>
    public RunContext? Context { get; init; }
}

/// <summary>One step. <paramref name="ImagesPerSecond"/> is a moving average over recent steps, data assembly included.</summary>
public sealed record StepReport(int Epoch, int Batch, StepMetrics Metrics, double ImagesPerSecond, TimeSpan? Eta);

/// <summary>
/// End of an epoch: train means over its steps by name, the validation metrics (null without a validation split),
/// whether it is the best so far. <see cref="Images"/> holds the image files the loop wrote for this epoch, by name
/// ("reconstruction", "samples"), for the outputs (TensorBoard, W&amp;B, the console).
/// </summary>
public sealed record EpochReport(
    int Epoch, int Epochs, long Step, IReadOnlyDictionary<string, double> Train, EvalMetrics? Validation, bool IsBest, double Seconds)
{
    /// <summary>Mean training loss per image over the epoch.</summary>
    public double TrainLoss => Train.GetValueOrDefault(Models.MetricNames.Loss);
    /// <summary>Mean reconstruction term per image over the epoch (0 when the objective has none).</summary>
    public double TrainReconstruction => Train.GetValueOrDefault(Models.MetricNames.Reconstruction);
    /// <summary>Mean KL per image over the epoch, nats (0 for a model without a KL term).</summary>
    public double TrainKl => Train.GetValueOrDefault(Models.MetricNames.Kl);

    /// <summary>Image files written for this epoch, by name; filled by the loop before the outputs hear of the epoch.</summary>
    public Dictionary<string, string> Images { get; } = new();

    /// <summary>The reconstruction grid's path, if one was written.</summary>
    public string? ReconstructionGrid => Images.GetValueOrDefault("reconstruction");

    /// <summary>The sample grid's path, if one was written.</summary>
    public string? SampleGrid => Images.GetValueOrDefault("samples");
}

/// <summary>A checkpoint written: which one ("last", "best"), where, at which step and epoch.</summary>
public sealed record CheckpointSaved(string Which, string Path, long Step, int Epoch);

/// <summary>How a run ended, before its <see cref="RunResult"/> is returned.</summary>
public sealed record RunEnd(RunOutcome Outcome, long Step, int Epoch, EvalMetrics? Validation, double? BestLoss, SettingText? Message);

/// <summary>A callback that ignores everything.</summary>
public sealed class NullCallback : IRunCallback
{
    /// <summary>The shared instance.</summary>
    public static readonly NullCallback Instance = new();
}
