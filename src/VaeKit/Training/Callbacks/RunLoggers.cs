using VaeKit.Models;

namespace VaeKit.Training;

/// <summary>
/// The loop's events as <see cref="MetricsRow"/>s for every <see cref="IRunLogger"/>, in the order given: the train
/// row of every <c>train.log_every</c>-th step, an epoch row at each epoch end (after the grids and checkpoints are
/// on disk), a resume row and a stop row. <c>log_every</c> and the rows' contents are decided here once; a logger only
/// writes them. A logger that throws fails the run (outputs are not optional); W&amp;B guards itself.
/// </summary>
internal sealed class RunLoggers(IReadOnlyList<IRunLogger> loggers) : IRunCallback
{
    private RunContext? _run;
    private int _logEvery = 1;

    public void RunStarted(RunStart start)
    {
        _run = start.Context;
        _logEvery = _run?.Config.Train.LogEvery ?? 1;
        foreach (var logger in loggers) logger.Start(start);
        if (start.Resumed)
            Log(new MetricsRow(MetricsRowKind.Resume, start.StartStep, (_run?.Position.Epoch ?? 0) + 1, []));
    }

    public void StepCompleted(StepReport report)
    {
        if (report.Metrics.Step % _logEvery != 0) return;
        var values = report.Metrics.Values.Select(kv => new Metric(MetricScope.Step, kv.Key, kv.Value)).ToList();
        values.Add(new Metric(MetricScope.Step, MetricNames.ImagesPerSecond, report.ImagesPerSecond));
        Log(new MetricsRow(MetricsRowKind.Train, report.Metrics.Step, report.Epoch, values));
    }

    public void EpochCompleted(EpochReport report)
    {
        var values = report.Train.Select(kv => new Metric(MetricScope.EpochTrain, kv.Key, kv.Value)).ToList();
        if (report.Validation is { } validation)
            values.AddRange(validation.Values.Select(kv => new Metric(MetricScope.Validation, kv.Key, kv.Value)));
        // kl_weight always means the weight in effect: in train rows the step's (after any schedule); here the one the
        // validation loss was computed with, the configured weight.
        if (_run is not null)
            values.Add(new Metric(MetricScope.Validation, MetricNames.KlWeight, _run.Config.Train.KlWeight));
        values.Add(new Metric(MetricScope.Epoch, "seconds", report.Seconds));
        Log(new MetricsRow(MetricsRowKind.Epoch, report.Step, report.Epoch, values)
        {
            Images = report.Images, IsBest = report.IsBest, Epochs = report.Epochs,
        });
    }

    public void RunEnded(RunEnd end)
    {
        Log(new MetricsRow(MetricsRowKind.Stop, end.Step, end.Epoch, []) { Outcome = end.Outcome });
        foreach (var logger in loggers) logger.End(end);
    }

    private void Log(MetricsRow row)
    {
        foreach (var logger in loggers) logger.Log(row);
    }
}
