namespace VaeKit.Training;

/// <summary>
/// runs/NAME/tensorboard/: every value of every row as a scalar under its path key (<see cref="MetricKeyStyle.Path"/>:
/// train/NAME, epoch/train_NAME, val/NAME, epoch/seconds) at the row's step, and the epoch's images (images/NAME) as
/// TensorBoard image summaries (<c>tensorboard --logdir runs</c>).
/// </summary>
public sealed class TensorBoardLogger : IRunLogger
{
    private TorchSharp.Modules.SummaryWriter? _writer;

    /// <inheritdoc/>
    public void Start(RunStart start)
    {
        var run = start.Context ?? throw new InvalidOperationException("TensorBoardLogger needs a run context");
        _writer = TorchSharp.torch.utils.tensorboard.SummaryWriter(run.Directory.TensorBoard);
    }

    /// <inheritdoc/>
    public void Log(MetricsRow row)
    {
        if (_writer is null) return;
        int step = (int)row.Step;
        foreach (var metric in row.Values) _writer.add_scalar(metric.Key(MetricKeyStyle.Path), (float)metric.Value, step);
        foreach (var (name, path) in row.Images) _writer.add_img("images/" + name, path, step);
    }
}
