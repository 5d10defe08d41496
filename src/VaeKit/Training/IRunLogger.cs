namespace VaeKit.Training;

/// <summary>
/// Where a run's numbers go: the one seam behind metrics.jsonl (<see cref="MetricsFile"/>), TensorBoard
/// (<see cref="TensorBoardLogger"/>), W&amp;B (<c>Tracking.Wandb.WandbListener</c>), the console and report.html
/// (<see cref="HtmlReportWriter"/>), in the spirit of Lightning's <c>log_metrics</c>. The loop hands every logger the same
/// typed rows (<see cref="MetricsRow"/>): a train row every <c>train.log_every</c> steps (applied once, by
/// <see cref="RunLoggers"/>), an epoch row at each epoch end, a resume row and a stop row. A logger names the values
/// in its own format with <see cref="Metric.Key"/>; it never decides which steps to log.
/// Register one in <see cref="TrainOptions.Loggers"/> (or pass a callback that also implements this interface).
/// </summary>
public interface IRunLogger
{
    /// <summary>The run is set up and about to take its first step (<see cref="RunStart.Context"/> has the run directory).</summary>
    void Start(RunStart start) { }

    /// <summary>One row of numbers, in step order.</summary>
    void Log(MetricsRow row);

    /// <summary>The run ended; the stop row was logged just before. The last call a logger gets.</summary>
    void End(RunEnd end) { }
}

/// <summary>What a row reports.</summary>
public enum MetricsRowKind
{
    /// <summary>A training step (every log_every steps): the step's numbers.</summary>
    Train,
    /// <summary>An epoch end: epoch means of the train numbers, validation numbers, the epoch's images.</summary>
    Epoch,
    /// <summary>A resumed run starts.</summary>
    Resume,
    /// <summary>The run ended (<see cref="MetricsRow.Outcome"/>).</summary>
    Stop,
}

/// <summary>Which group a number belongs to; it decides the prefix every output writes (see <see cref="Metric.Key"/>).</summary>
public enum MetricScope
{
    /// <summary>A step's own number (loss, a term, lr, img_per_sec).</summary>
    Step,
    /// <summary>The mean of a step number over an epoch.</summary>
    EpochTrain,
    /// <summary>Measured on the validation split at an epoch end (evaluation mode).</summary>
    Validation,
    /// <summary>A number about the epoch itself (seconds).</summary>
    Epoch,
}

/// <summary>How an output spells a metric's key.</summary>
public enum MetricKeyStyle
{
    /// <summary>metrics.jsonl: bare names in train rows, <c>train_NAME</c> and <c>val_NAME</c> in epoch rows.</summary>
    Flat,
    /// <summary>TensorBoard and W&amp;B: <c>train/NAME</c>, <c>epoch/train_NAME</c>, <c>val/NAME</c>, <c>epoch/NAME</c>.</summary>
    Path,
}

/// <summary>One number of a row, named by <see cref="Models.MetricNames"/> or a family's own declaration.</summary>
public readonly record struct Metric(MetricScope Scope, string Name, double Value)
{
    /// <summary>The key this metric is written under in <paramref name="style"/>; the one place the prefixes live.</summary>
    public string Key(MetricKeyStyle style) => (style, Scope) switch
    {
        (MetricKeyStyle.Flat, MetricScope.Step or MetricScope.Epoch) => Name,
        (MetricKeyStyle.Flat, MetricScope.EpochTrain) => "train_" + Name,
        (MetricKeyStyle.Flat, MetricScope.Validation) => "val_" + Name,
        (MetricKeyStyle.Path, MetricScope.Step) => "train/" + Name,
        (MetricKeyStyle.Path, MetricScope.EpochTrain) => "epoch/train_" + Name,
        (MetricKeyStyle.Path, MetricScope.Validation) => "val/" + Name,
        (MetricKeyStyle.Path, MetricScope.Epoch) => "epoch/" + Name,
        _ => throw new ArgumentOutOfRangeException(nameof(style)),
    };
}

/// <summary>
/// One row of a run's numbers, the same for every <see cref="IRunLogger"/>.
/// </summary>
/// <param name="Kind">What the row reports.</param>
/// <param name="Step">The optimizer step (for an epoch row, the step the epoch ended at).</param>
/// <param name="Epoch">The epoch (1-based) the row belongs to.</param>
/// <param name="Values">The numbers, in the order the outputs list them.</param>
public sealed record MetricsRow(MetricsRowKind Kind, long Step, int Epoch, IReadOnlyList<Metric> Values)
{
    /// <summary>Epoch rows: image files written for the epoch, by name (reconstruction, samples).</summary>
    public IReadOnlyDictionary<string, string> Images { get; init; } = new Dictionary<string, string>();

    /// <summary>Epoch rows: whether this epoch's loss is the best so far.</summary>
    public bool IsBest { get; init; }

    /// <summary>Epoch rows: the epoch count of the run.</summary>
    public int Epochs { get; init; }

    /// <summary>Stop rows: how the run ended.</summary>
    public RunOutcome? Outcome { get; init; }

    /// <summary>The value of <paramref name="name"/> in <paramref name="scope"/>, if the row has it.</summary>
    public double? Get(MetricScope scope, string name)
    {
        foreach (var m in Values)
            if (m.Scope == scope && m.Name == name) return m.Value;
        return null;
    }

    /// <summary>The row's numbers of one scope, by name.</summary>
    public IReadOnlyDictionary<string, double> Scope(MetricScope scope) =>
        Values.Where(m => m.Scope == scope).ToDictionary(m => m.Name, m => m.Value);
}
