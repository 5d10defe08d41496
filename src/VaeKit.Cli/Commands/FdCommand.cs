using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using VaeKit.Evaluation;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae fd</c>: the image-space Fréchet distance between two image sets.</summary>
internal static class FdCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var data = new Option<string>("--data") { Description = "First image set: a folder, a .zip, fashion-mnist[:DIR] or synthetic[:N]", Required = true }.Sets(Settings.Data.Source);
        var reference = new Option<string>("--reference") { Description = "Second image set, the same kinds", Required = true };
        var net = new Option<string?>("--net") { Description = "Feature network: fashion-mnist, faces, inception (the standard FID's file, from the cache), or a file: a TorchScript network of Inception's signature or a safetensors network (docs/fd.md) [default: fashion-mnist when both sets are Fashion-MNIST, else faces]" };
        var limit = new Option<int?>("--limit") { Description = $"Images per set, at most {ImageFrechet.MaxImages} [default: {ImageFrechet.MaxImages} or all]" }.Sets(Settings.Eval.Limit);
        var json = new Option<bool>("--json") { Description = "Print the result as JSON (keys fd, kid, kid_std, precision, recall)" };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Decoded-dataset cache (\"\" for none) [default: $VAEKIT_CACHE, else $XDG_CACHE_HOME/vaekit, else ~/.cache/vaekit]" }.Sets(Settings.Data.CacheDirectory);
        var device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
        var command = new Command("fd", "Fréchet distance between two image sets in a fixed feature network's features (lower: closer).")
        {
            data, reference, net, limit, json, cacheDir, device,
        };
        command.SetAction((r, ct) =>
        {
            var report = ImageFrechet.Compare(r.GetValue(data)!, r.GetValue(reference)!, r.GetValue(net), r.GetValue(limit), r.GetValue(device)!,
                                              r.GetValue(cacheDir), cancellationToken: ct);
            if (r.GetValue(json))
                console.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(report, Json.Indented));
            else
            {
                console.MarkupLineInterpolated($"[bold]fd {report.Fd.ToString("F3", CultureInfo.InvariantCulture)}[/]  {report.DataImages} images of {report.Data} vs {report.ReferenceImages} of {report.Reference}  ({report.FdNet} features, {report.Seconds:F1}s)");
                console.MarkupLineInterpolated($"kid {report.Kid.ToString("F4", CultureInfo.InvariantCulture)} ± {report.KidStd.ToString("F4", CultureInfo.InvariantCulture)}  (unbiased; mean ± s.d. over {KernelDistance.Subsets} subsets of {report.KidSubsetSize})");
                if (report.Precision is { } precision)
                    console.MarkupLineInterpolated($"precision {precision.ToString("F3", CultureInfo.InvariantCulture)}  recall {report.Recall!.Value.ToString("F3", CultureInfo.InvariantCulture)}  (--data inside --reference's manifold / --reference inside --data's, k = {PrecisionRecall.Neighbours})");
                if (report.FdNote is not null) console.MarkupLineInterpolated($"[yellow]note:[/] {report.FdNote}");
            }
            return Task.FromResult(ExitCodes.Ok);
        });
        return command;
    }
}
