using System.Diagnostics;
using Spectre.Console;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Training;

namespace VaeKit.Cli;

/// <summary>
/// Renders a run: on a terminal, live progress bars (a finished bar is removed, so it is never redrawn under the lines
/// printed after it); redirected, plain lines: one per event (start, each epoch, notices) and a progress line every
/// <see cref="PlainProgressSeconds"/> seconds.
/// </summary>
internal static class ConsoleListeners
{
    public static T Run<T>(IAnsiConsole console, Func<IRunCallback, T> work)
    {
        if (!console.Profile.Capabilities.Interactive)
            return work(new PlainListener(console));

        T result = default!;
        console.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                     new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context => result = work(new LiveListener(console, context)));
        return result;
    }

    /// <summary>Seconds between progress lines in a redirected log.</summary>
    internal const double PlainProgressSeconds = 30;

    internal static void PrintStart(IAnsiConsole console, RunStart s)
    {
        var d = s.Dataset;
        console.MarkupLineInterpolated($"[bold]{(s.Resumed ? "resuming" : "run")} {s.Name}[/]  → {s.Directory}");
        console.MarkupLineInterpolated(
            $"  data: {d.Source}  {d.TrainCount} train / {d.ValidationCount} val  {d.ImageSize}px×{d.Channels}ch{(d.FromCache ? "  (cached)" : "")}{(d.Skipped > 0 ? $"  skipped {d.Skipped} bad file(s)" : "")}");
        foreach (var example in d.SkippedExamples)
            console.MarkupLineInterpolated($"    [yellow]skipped[/] {example}");
        console.MarkupLineInterpolated(
            $"  model: {s.Parameters:N0} parameters  device {s.Device}  {s.Threads} thread(s)  {s.StepsPerEpoch} steps/epoch  {s.TotalSteps} steps{(s.StartStep > 0 ? $" (from step {s.StartStep})" : "")}");
    }

    /// <summary>An epoch row as one line: train loss and the objective's own terms, validation loss, reconstruction,
    /// terms, mse and psnr, seconds, best. Terms come from the row, so a family's own appear with no CLI change.</summary>
    internal static void PrintEpoch(IAnsiConsole console, MetricsRow e)
    {
        if (e.Kind != MetricsRowKind.Epoch) return;
        var v = e.Scope(MetricScope.Validation);
        double Val(string name) => v.GetValueOrDefault(name);
        string validation = !v.ContainsKey(MetricNames.Loss)
            ? ""
            : $"  val loss {Val(MetricNames.Loss):F2} (rec {Val(MetricNames.Reconstruction):F2}{Terms(v, ", ")}, mse {Val(MetricNames.Mse):F5}, psnr {Val(MetricNames.Psnr):F2} dB)";
        var trainMeans = e.Scope(MetricScope.EpochTrain);
        string train = Terms(trainMeans, "");
        console.MarkupLineInterpolated(
            $"epoch {e.Epoch}/{e.Epochs}  step {e.Step}  train loss {trainMeans.GetValueOrDefault(MetricNames.Loss):F2}{(train.Length > 0 ? $" ({train})" : "")}{validation}  {e.Get(MetricScope.Epoch, "seconds") ?? 0:F1}s{(e.IsBest ? "  ★ best" : "")}");
    }

    /// <summary>The objective's own terms (kl for a VAE, commitment and perplexity for a VQ-VAE, …), each as "name value",
    /// after <paramref name="lead"/>; the terms every model has (loss, reconstruction, mse, psnr) are shown elsewhere.</summary>
    internal static string Terms(IReadOnlyDictionary<string, double> values, string lead)
    {
        var own = values.Where(kv => MetricNames.IsTerm(kv.Key) && kv.Key is not (MetricNames.Loss or MetricNames.Reconstruction or MetricNames.Mse))
                        .Select(kv => $"{kv.Key} {MetricNames.Format(kv.Key, kv.Value)}").ToList();
        return own.Count == 0 ? "" : (lead.Length > 0 ? lead : "") + string.Join(", ", own);
    }


    internal static string Describe(StepReport r)
    {
        string own = Terms(r.Metrics.Values, "");
        return $"epoch {r.Epoch} loss {r.Metrics.Loss:F1}{(own.Length > 0 ? " " + own.Replace(",", "") : "")} psnr {r.Metrics.Psnr:F1} {r.ImagesPerSecond:F0} img/s";
    }

    private sealed class LiveListener(IAnsiConsole console, ProgressContext context) : IRunCallback, IRunLogger
    {
        private ProgressTask? _decode, _train;

        public void DataProgress(DecodeProgress p)
        {
            if (p.IsWarning) { Warning(p.Stage); return; }
            _decode ??= context.AddTask(Markup.Escape(p.Stage), maxValue: Math.Max(1, p.Total));
            _decode.Description = Markup.Escape(p.Stage);
            _decode.MaxValue = Math.Max(1, p.Total);
            _decode.Value = p.Done;
        }

        public void RunStarted(RunStart s)
        {
            if (_decode is not null) { _decode.Value = _decode.MaxValue; _decode.StopTask(); }
            PrintStart(console, s);
            _train = context.AddTask("training", maxValue: s.TotalSteps);
            _train.Value = s.StartStep;
        }

        public void StepCompleted(StepReport r)
        {
            if (_train is null) return;
            _train.Value = r.Metrics.Step;
            _train.Description = Markup.Escape(Describe(r));
        }

        public void Log(MetricsRow row) => PrintEpoch(console, row);

        public void Message(string text) => console.MarkupLineInterpolated($"{text}");

        public void Warning(string text) => console.MarkupLineInterpolated($"[yellow]warning: {text}[/]");
    }

    private sealed class PlainListener(IAnsiConsole console) : IRunCallback, IRunLogger
    {
        private readonly Stopwatch _sinceLine = Stopwatch.StartNew();
        private long _totalSteps;

        public void DataProgress(DecodeProgress p)
        {
            if (p.IsWarning) { Warning(p.Stage); return; }
            if (p.Total > 0 && (p.Done == p.Total || _sinceLine.Elapsed.TotalSeconds >= PlainProgressSeconds))
            {
                console.WriteLine($"{p.Stage}: {p.Done}/{p.Total}");
                _sinceLine.Restart();
            }
        }

        public void RunStarted(RunStart s)
        {
            _totalSteps = s.TotalSteps;
            PrintStart(console, s);
        }

        public void StepCompleted(StepReport r)
        {
            if (_sinceLine.Elapsed.TotalSeconds < PlainProgressSeconds) return;
            _sinceLine.Restart();
            string eta = r.Eta is TimeSpan t ? $" eta {t:hh\\:mm\\:ss}" : "";
            console.WriteLine($"step {r.Metrics.Step}/{_totalSteps} {Describe(r)}{eta}");
        }

        public void Log(MetricsRow row) => PrintEpoch(console, row);

        public void Message(string text) => console.WriteLine(text);

        public void Warning(string text) => console.WriteLine($"warning: {text}");
    }
}
