using VaeKit.Models;

namespace VaeKit.Training;

/// <summary>
/// runs/NAME/tensorboard/: train/NAME every log_every steps, val/NAME at each epoch end, and the epoch's images
/// (images/NAME) as TensorBoard image summaries (<c>tensorboard --logdir runs</c>).
/// </summary>
public sealed class TensorBoardLogger : IRunCallback
{
    private TorchSharp.Modules.SummaryWriter? _writer;
    private int _logEvery = 1;

    /// <inheritdoc/>
    public void RunStarted(RunStart start)
    {
        var run = start.Context ?? throw new InvalidOperationException("TensorBoardLogger needs a run context");
        _writer = TorchSharp.torch.utils.tensorboard.SummaryWriter(run.Directory.TensorBoard);
        _logEvery = run.Config.Train.LogEvery;
    }

    /// <inheritdoc/>
    public void StepCompleted(StepReport report)
    {
        if (_writer is null || report.Metrics.Step % _logEvery != 0) return;
        int step = (int)report.Metrics.Step;
        foreach (var (name, value) in report.Metrics.Values) _writer.add_scalar("train/" + name, (float)value, step);
        _writer.add_scalar("train/" + MetricNames.ImagesPerSecond, (float)report.ImagesPerSecond, step);
    }

    /// <inheritdoc/>
    public void EpochCompleted(EpochReport report)
    {
        if (_writer is null) return;
        int step = (int)report.Step;
        if (report.Validation is { } validation)
            foreach (var (name, value) in validation.Values) _writer.add_scalar("val/" + name, (float)value, step);
        foreach (var (name, path) in report.Images) _writer.add_img("images/" + name, path, step);
    }
}
