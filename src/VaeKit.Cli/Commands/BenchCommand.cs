using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using VaeKit.Benchmarks;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae bench</c>: steady-state training throughput and friends for one configuration.</summary>
internal static class BenchCommand
{
    private static readonly Option<string> Device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
    private static readonly Option<int> Batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 64 }.Sets(Settings.Bench.Batch);
    private static readonly Option<int> Steps = new Option<int>("--steps") { Description = "Timed training steps (rounded up to whole read-back windows on a GPU)", DefaultValueFactory = _ => 30 }.Sets(Settings.Bench.Steps);
    private static readonly Option<int> Warmup = new Option<int>("--warmup") { Description = "Untimed steps first (at least 40 on a GPU)", DefaultValueFactory = _ => 5 }.Sets(Settings.Bench.Warmup);
    private static readonly Option<int?> Threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch [default: one per core]" }.Sets(Settings.Runtime.Threads);
    private static readonly Option<bool> AsJson = new("--json") { Description = "Print the result as JSON" };

    public static Command Create(IAnsiConsole console)
    {
        var models = new ModelOptions();
        var command = new Command("bench", "Measure training, inference and sampling speed of a model on this machine.");
        models.AddTo(command);
        foreach (var option in new Option[] { Device, Batch, Steps, Warmup, Threads, TrainCommand.PrecisionOption, TrainCommand.ChannelsLastOption, TrainCommand.NoTf32, TrainCommand.DeterministicOption, TrainCommand.CudnnBenchmarkOption,
                                                  TrainCommand.AdversarialWeight, TrainCommand.AdversarialLossOption, TrainCommand.FeatureMatching,
                                                  TrainCommand.DiscLayers, TrainCommand.DiscWidth, TrainCommand.DiscNorm, AsJson })
            command.Options.Add(option);
        command.SetAction(r =>
        {
            var (preset, config) = models.ToConfig(r);
            var options = new BenchOptions
            {
                Preset = preset,
                Model = config,
                Device = r.GetValue(Device)!,
                Batch = r.GetValue(Batch),
                Steps = r.GetValue(Steps),
                Warmup = r.GetValue(Warmup),
                Threads = r.GetValue(Threads),
                Precision = TrainCommand.ParsePrecision(r.GetValue(TrainCommand.PrecisionOption)),
                Tf32 = !r.GetValue(TrainCommand.NoTf32),
                ChannelsLast = TrainCommand.ParseChannelsLast(r.GetValue(TrainCommand.ChannelsLastOption)),
                Deterministic = r.GetValue(TrainCommand.DeterministicOption),
                CudnnBenchmark = r.GetValue(TrainCommand.CudnnBenchmarkOption),
                Critics = TrainCommand.Critics(r),
            };
            bool json = r.GetValue(AsJson);
            var result = TrainBenchmark.Run(options, json ? null : message => console.MarkupLineInterpolated($"[grey]{message}…[/]"));
            if (json)
            {
                console.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(result, Json.Indented));
                return ExitCodes.Ok;
            }
            Print(console, result);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Print(IAnsiConsole console, BenchResult b)
    {
        console.MarkupLineInterpolated(
            $"[bold]{b.Preset}[/] ({b.Parameters:N0} params{(b.DiscriminatorParameters > 0 ? $", discriminator {b.DiscriminatorParameters:N0}" : "")}) on {b.Device}, {b.Precision}{(b.ChannelsLast ? " channels-last" : "")}, batch {b.Batch}, {b.Threads} CPU threads, {b.TimedSteps} timed steps");
        var table = new Table().Border(TableBorder.Simple).AddColumns("measure", "value");
        table.Columns[1].RightAligned();
        table.AddRow("train step (median)", $"{b.StepMs:F2} ms");
        table.AddRow("train throughput", $"{b.TrainImagesPerSecond:N1} img/s");
        table.AddRow("model work per image (train step)", $"{b.TrainGflopPerImage:F3} GFLOP");
        table.AddRow("achieved", $"{b.AchievedGflops:N1} GFLOP/s");
        table.AddRow($"matmul peak, measured ({b.Precision})", $"{b.MatmulPeakGflops:N1} GFLOP/s");
        table.AddRow("fraction of peak", $"{b.PeakFraction:P1}");
        table.AddRow("waiting for data", $"{b.DataWaitFraction:P2} of step time");
        table.AddRow("inference (encode + decode)", $"{b.InferenceImagesPerSecond:N1} img/s");
        table.AddRow("sampling (decode)", $"{b.SamplingImagesPerSecond:N1} img/s");
        if (b.PeakRssBytes is long rss) table.AddRow("peak RSS", $"{rss / 1048576.0:N0} MiB");
        if (b.GpuMemoryUsedBytes is long gpu) table.AddRow("GPU memory in use (driver)", $"{gpu / 1048576.0:N0} MiB");
        table.AddRow("last training loss", $"{b.FinalLoss:F2}");
        console.Write(table);
    }
}
