namespace VaeKit.Training;

/// <summary>Calls each callback in order. A callback that throws fails the run (outputs are not optional); one that
/// must never stop training (W&amp;B) guards itself.</summary>
internal sealed class CallbackList(IReadOnlyList<IRunCallback> callbacks) : IRunCallback
{
    public void DataProgress(Data.DecodeProgress progress) { foreach (var c in callbacks) c.DataProgress(progress); }
    public void RunStarted(RunStart start) { foreach (var c in callbacks) c.RunStarted(start); }
    public void StepCompleted(StepReport report) { foreach (var c in callbacks) c.StepCompleted(report); }
    public void EpochCompleted(EpochReport report) { foreach (var c in callbacks) c.EpochCompleted(report); }
    public void CheckpointSaved(CheckpointSaved saved) { foreach (var c in callbacks) c.CheckpointSaved(saved); }
    public void RunEnded(RunEnd end) { foreach (var c in callbacks) c.RunEnded(end); }
    public void Message(string text) { foreach (var c in callbacks) c.Message(text); }
    public void Warning(string text) { foreach (var c in callbacks) c.Warning(text); }
}
