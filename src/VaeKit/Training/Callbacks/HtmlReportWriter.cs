using VaeKit.Reporting;

namespace VaeKit.Training;

/// <summary>Rewrites runs/NAME/report.html (<see cref="HtmlReport"/>, charted from metrics.jsonl) when the run ends,
/// however it ended; the last logger, after metrics.jsonl is complete. A report that cannot be written is a notice,
/// not a failed run.</summary>
public sealed class HtmlReportWriter : IRunLogger
{
    private RunContext? _run;

    /// <inheritdoc/>
    public void Start(RunStart start) => _run = start.Context;

    /// <inheritdoc/>
    public void Log(MetricsRow row) { }

    /// <inheritdoc/>
    public void End(RunEnd end)
    {
        if (_run is null) return;
        string output = Path.Combine(_run.Directory.Path, "report.html");
        try
        {
            HtmlReport.Write([_run.Directory.Path], output);
        }
        catch (Exception e) when (e is BadInputException or IOException or UnauthorizedAccessException)
        {
            _run.Warn($"no HTML report ({e.Message})");   // the run's outcome stands; say why the report is missing
        }
    }
}
