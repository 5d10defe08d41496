using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Data;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae data</c>: decode (and cache) a data set exactly as <c>vae train</c> would, without training: how many images,
/// which files were skipped, the split, the fingerprint, and the memory it took. Run it on a login node to fill the
/// cache before a job, or to find the broken files of a download.
/// </summary>
internal static class DataCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var data = new Option<string>("--data") { Description = "Images: a folder, a .zip, fashion-mnist[:DIR] or synthetic[:N]", DefaultValueFactory = _ => "synthetic" }.Sets(Settings.Data.Source);
        var size = new Option<int>("--image-size") { Description = "Image side in pixels", DefaultValueFactory = _ => 32 }.Sets(Settings.Model.ImageSize);
        var channels = new Option<int?>("--channels") { Description = "1 (grey) or 3 (colour) [default: the data's]" }.Sets(Settings.Data.Channels);
        var fraction = new Option<double>("--val-fraction") { Description = "Held-out validation fraction", DefaultValueFactory = _ => 0.05 }.Sets(Settings.Data.ValidationFraction);
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Decoded-dataset cache [default: $VAEKIT_CACHE, else $XDG_CACHE_HOME/vaekit, else ~/.cache/vaekit]" }.Sets(Settings.Data.CacheDirectory);
        var noCache = new Option<bool>("--no-cache") { Description = "Decode; neither read nor write the cache" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };

        var command = new Command("data", "Decode and cache a data set as vae train would, and show what it holds: counts, skipped files, split, fingerprint, memory.")
        {
            data, size, channels, fraction, cacheDir, noCache, json,
        };
        command.SetAction(r =>
        {
            var options = new DataOptions
            {
                Source = DataSpec.Parse(r.GetValue(data)),
                ImageSize = r.GetValue(size),
                Channels = r.GetValue(channels),
                ValidationFraction = r.GetValue(fraction),
                Seed = Config.DataConfig.SplitSeed,
                CacheDirectory = r.GetValue(noCache) ? CacheLocation.Off : r.GetValue(cacheDir),
            };
            bool asJson = r.GetValue(json);
            var clock = Stopwatch.StartNew();
            using var loaded = DatasetLoader.Load(options, asJson ? null : new StageLines(console));
            double seconds = clock.Elapsed.TotalSeconds;
            long bytes = loaded.Train.ByteLength + loaded.Validation.ByteLength;
            long peak = PeakResidentBytes();
            var d = loaded.Description;
            if (asJson)
            {
                var node = JsonSerializer.SerializeToNode(d, Json.Indented)!.AsObject();
                node["seconds"] = Math.Round(seconds, 3);
                node["decoded_bytes"] = bytes;
                node["peak_rss_bytes"] = peak;
                console.Profile.Out.Writer.WriteLine(node.ToJsonString(Json.Indented));
                return ExitCodes.Ok;
            }
            console.MarkupLineInterpolated($"[bold]{d.Source}[/]  {d.ImageSize}px × {d.Channels}ch  fingerprint {d.Fingerprint}");
            console.MarkupLineInterpolated($"  {d.Decoded:N0} images: {d.TrainCount:N0} train / {d.ValidationCount:N0} validation  ({bytes / 1e6:N0} MB decoded{(d.FromCache ? ", from the cache" : "")})");
            if (d.Skipped > 0)
            {
                console.MarkupLineInterpolated($"  skipped {d.Skipped} file(s) that could not be decoded{(d.Skipped > d.SkippedExamples.Count ? ", e.g." : ":")}");
                foreach (var example in d.SkippedExamples) console.MarkupLineInterpolated($"    {example}");
            }
            console.MarkupLineInterpolated($"  {seconds:F1}s, peak memory {peak / 1e9:F2} GB");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The process's peak resident set (Linux VmHWM); 0 where the platform does not say.</summary>
    private static long PeakResidentBytes()
    {
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    /// <summary>One line when a stage starts and one when it ends (no bars: the output reads the same in a log file).</summary>
    private sealed class StageLines(IAnsiConsole console) : IProgress<DecodeProgress>
    {
        private readonly Lock _gate = new();
        private readonly Stopwatch _clock = new();
        private string? _stage;

        public void Report(DecodeProgress value)
        {
            lock (_gate)
            {
                if (value.IsWarning)
                {
                    console.MarkupLineInterpolated($"  [yellow]warning:[/] {value.Stage}");
                    return;
                }
                if (value.Stage != _stage && value.Done == 0)
                {
                    _stage = value.Stage;
                    _clock.Restart();
                    console.MarkupLineInterpolated($"  {value.Stage}…");
                }
                else if (value.Done == value.Total && value.Total > 0 && _stage == value.Stage)
                {
                    _stage = null;
                    console.MarkupLineInterpolated($"  {value.Stage}: {value.Total:N0} done ({_clock.Elapsed.TotalSeconds:F1}s)");
                }
            }
        }
    }
}
