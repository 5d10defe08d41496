using System.Diagnostics;

namespace VaeKit.Training;

/// <summary>
/// When checkpoints are written (the run store writes them atomically): "last" at every epoch end, every
/// checkpoint_minutes inside long epochs, and when a run is interrupted; "best" at each epoch whose validation loss
/// (train loss without a validation split) is the lowest so far. A diverged run saves nothing: its weights are not
/// valid.
/// </summary>
public sealed class Checkpoints : IRunCallback
{
    private readonly Stopwatch _sinceSave = Stopwatch.StartNew();
    private RunContext? _run;

    /// <inheritdoc/>
    public void RunStarted(RunStart start) => _run = start.Context;

    /// <inheritdoc/>
    public void StepCompleted(StepReport report)
    {
        if (_run is not null && _sinceSave.Elapsed.TotalMinutes >= _run.Config.Train.CheckpointMinutes)
            _run.RequestCheckpoint();
    }

    /// <inheritdoc/>
    public void EpochCompleted(EpochReport report)
    {
        if (_run is null) return;
        if (report.IsBest) _run.SaveCheckpoint("best");
        _run.SaveCheckpoint("last");
    }

    /// <inheritdoc/>
    public void CheckpointSaved(CheckpointSaved saved)
    {
        if (saved.Which == "last") _sinceSave.Restart();
    }

    /// <inheritdoc/>
    public void RunEnded(RunEnd end)
    {
        if (_run is not null && end.Outcome == RunOutcome.Interrupted && _run.LastSavedStep != _run.Step)
            _run.SaveCheckpoint("last");
    }
}
