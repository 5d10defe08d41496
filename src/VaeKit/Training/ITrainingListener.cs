using VaeKit.Data;

namespace VaeKit.Training;

/// <summary>What a run tells its front end, one call at a time (decode progress may come from worker threads, serialised); implementations must be quick.</summary>
public interface ITrainingListener
{
    void DataProgress(DecodeProgress progress) { }
    void RunStarted(RunStart start) { }
    void StepCompleted(StepReport report) { }
    void EpochCompleted(EpochReport report) { }
    void Message(string text) { }
}

public sealed record RunStart(
    string Name, string Directory, string Device, int Threads, long Parameters, DatasetDescription Dataset,
    int StepsPerEpoch, long TotalSteps, long StartStep, bool Resumed);

/// <summary>One step. <paramref name="ImagesPerSecond"/> is a moving average over recent steps, data assembly included.</summary>
public sealed record StepReport(int Epoch, int Batch, StepMetrics Metrics, double ImagesPerSecond, TimeSpan? Eta);

/// <summary>End of an epoch: train means over its steps and the validation metrics (null without a validation split).</summary>
public sealed record EpochReport(
    int Epoch, int Epochs, long Step, double TrainLoss, double TrainReconstruction, double TrainKl,
    EvalMetrics? Validation, bool IsBest, double Seconds, string ReconstructionGrid, string SampleGrid);

/// <summary>A listener that ignores everything.</summary>
public sealed class NullTrainingListener : ITrainingListener
{
    public static readonly NullTrainingListener Instance = new();
}
