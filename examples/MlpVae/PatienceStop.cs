using VaeKit.Training;

namespace MlpVaeExample;

/// <summary>A user callback: stops the run (checkpoint saved, resumable) when validation loss has not improved for
/// <paramref name="patience"/> epochs, and counts what it saw.</summary>
public sealed class PatienceStop(int patience) : IRunCallback
{
    private RunContext? _run;
    private int _sinceBest;

    public int Steps { get; private set; }

    public void RunStarted(RunStart start) => _run = start.Context;

    public void StepCompleted(StepReport report) => Steps++;

    public void EpochCompleted(EpochReport report)
    {
        Console.WriteLine($"  epoch {report.Epoch}: train loss {report.TrainLoss:F2}, val loss {report.Validation?.Loss:F2}, psnr {report.Validation?.Psnr:F2} dB");
        _sinceBest = report.IsBest ? 0 : _sinceBest + 1;
        if (_sinceBest >= patience) _run?.RequestStop($"no improvement for {patience} epochs");
    }
}
