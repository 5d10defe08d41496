using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using VaeKit.Imaging;
using static TorchSharp.torch;

namespace VaeKit.Sweeps;

/// <summary>
/// The files a sweep leaves besides its runs: a side-by-side grid per run (reconstructions | samples), one overview
/// of all runs, the rate–distortion plot (ScottPlot), summary.csv and summary.json, and index.html, which embeds
/// every picture (base64) so it can be mailed or archived as one file.
/// </summary>
internal static class SweepOutputs
{
    private const int GridImages = 8;     // reconstructed images and samples per run in the grids
    private const int SampleSeed = 0;     // the same z for every run, so the samples differ only by the model

    public static void Write(SweepDirectory dir, SweepPlan plan, IReadOnlyList<SweepEntry> entries, IReadOnlyList<SweepRow> rows)
    {
        Directory.CreateDirectory(dir.Grids);
        var finished = rows.Where(r => r.Status == "completed").ToList();
        Tensor? originals = null;
        var overviewRows = new List<(Tensor Reconstructions, Tensor Samples)>();
        try
        {
            foreach (var row in finished)
            {
                using var trained = TrainedModel.Load(row.Run, "last", plan.Base.Runtime.Device);
                using var data = trained.LoadData(null);
                var images = TrainedModel.Showcase(data, runData: true, needed: GridImages);
                var (x, reconstructions) = trained.Reconstruct(images, GridImages);
                using var samples = trained.Sample(GridImages * 2, temperature: 1, seed: SampleSeed);
                if (originals is null) originals = x; else x.Dispose();
                WritePanel(dir.Grid(Path.GetFileName(row.Run)), originals, reconstructions, samples, trained.Config.Model.ImageSize);
                overviewRows.Add((reconstructions, samples.narrow(0, 0, GridImages).clone()));
            }
            if (originals is not null)
                WriteOverview(dir.Overview, originals, overviewRows, plan.Base.Model.ImageSize);
        }
        finally
        {
            originals?.Dispose();
            foreach (var (r, s) in overviewRows) { r.Dispose(); s.Dispose(); }
        }

        RateDistortionPlot.Save(dir.RateDistortion, rows);
        Json.WriteAllTextAtomic(dir.SummaryJson, JsonSerializer.Serialize(new { name = plan.Name, rows }, Json.Indented) + "\n");
        Json.WriteAllTextAtomic(dir.SummaryCsv, Csv(rows));
        Json.WriteAllTextAtomic(dir.Html, Html(dir, plan, rows));
    }

    /// <summary>Left: originals (odd rows) above reconstructions; right: samples from the sweep's shared z.</summary>
    private static void WritePanel(string path, Tensor originals, Tensor reconstructions, Tensor samples, int imageSize)
    {
        using var scope = NewDisposeScope();
        const int columns = 4;
        int scale = Math.Max(1, 64 / imageSize);
        var left = ImageGrid.Make(ImageGrid.Interleave(originals, reconstructions, columns), columns, scale: scale);
        var right = ImageGrid.Make(samples, columns, scale: scale);
        ImageGrid.SavePng(SideBySide(left, right), path);
    }

    /// <summary>Top row: the originals; then one row per run: its reconstructions | its samples.</summary>
    private static void WriteOverview(string path, Tensor originals, List<(Tensor Reconstructions, Tensor Samples)> rows, int imageSize)
    {
        using var scope = NewDisposeScope();
        int scale = Math.Max(1, 64 / imageSize);
        var blank = full([GridImages, originals.shape[1], originals.shape[2], originals.shape[3]], 1f);
        var left = ImageGrid.Make(cat([originals, .. rows.Select(r => r.Reconstructions)], 0), GridImages, scale: scale);
        var right = ImageGrid.Make(cat([blank, .. rows.Select(r => r.Samples)], 0), GridImages, scale: scale);
        ImageGrid.SavePng(SideBySide(left, right), path);
    }

    /// <summary>(H, W1, 3) and (H, W2, 3) uint8 → one picture with a white gap between them.</summary>
    private static Tensor SideBySide(Tensor left, Tensor right)
    {
        long height = Math.Max(left.shape[0], right.shape[0]);
        Tensor Pad(Tensor t) => t.shape[0] == height ? t : cat([t, full([height - t.shape[0], t.shape[1], 3], (byte)255, ScalarType.Byte)], 0);
        var gap = full([height, 16, 3], (byte)255, ScalarType.Byte);
        return cat([Pad(left), gap, Pad(right)], 1);
    }

    private static string N(double? v, string format = "G6") => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "";

    private static string Csv(IReadOnlyList<SweepRow> rows)
    {
        var sb = new StringBuilder("label,model,kl_weight,status,steps,train_seconds,mse,psnr,ssim,kl,active_units,elbo_nats,nll_nats,nll_bits_per_dim,frechet,frechet_aggregate,run\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', r.Label, r.Model, N(r.KlWeight), r.Status, r.Steps.ToString(CultureInfo.InvariantCulture), N(r.TrainSeconds, "F1"),
                N(r.Mse), N(r.Psnr), N(r.Ssim), N(r.Kl), r.ActiveUnits?.ToString(CultureInfo.InvariantCulture) ?? "",
                N(r.ElboNats), N(r.NllNats), N(r.NllBitsPerDim), N(r.Frechet), N(r.FrechetAggregate), '"' + r.Run.Replace("\"", "\"\"") + '"'));
        return sb.ToString();
    }

    private static string Html(SweepDirectory dir, SweepPlan plan, IReadOnlyList<SweepRow> rows)
    {
        static string Img(string path, string alt) =>
            File.Exists(path) ? $"<img src=\"data:image/png;base64,{Convert.ToBase64String(File.ReadAllBytes(path))}\" alt=\"{WebUtility.HtmlEncode(alt)}\">" : "";
        static string E(string s) => WebUtility.HtmlEncode(s);
        var b = plan.Base;
        var sb = new StringBuilder();
        sb.Append($$"""
            <!doctype html>
            <html><head><meta charset="utf-8"><title>{{E(plan.Name)}}: kl_weight sweep</title>
            <style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l{text-align:left}img{image-rendering:pixelated}</style>
            </head><body>
            <h1>{{E(plan.Name)}}: what kl_weight does</h1>
            <p>Preset {{E(b.Preset ?? "custom")}}, data {{E(b.Data.Source)}}, {{b.Train.Epochs}} epoch(s){{(b.Train.MaxSteps is int m ? $" (at most {m} steps)" : "")}}, batch {{b.Train.BatchSize}}, seed {{b.Train.Seed}}, KL schedule {{E(b.Train.KlSchedule)}}{{(b.Train.FreeBits > 0 ? $", free bits {N(b.Train.FreeBits)}" : "")}}; the same for every run. Metrics from <code>vae eval</code> on the validation split, last checkpoint; likelihoods with k = {{plan.Eval.ImportanceSamples}} and decoder σ² = {{N(plan.Eval.DecoderVariance)}}.</p>
            <h2>Rate–distortion</h2>
            {{Img(dir.RateDistortion, "rate-distortion plot")}}
            <h2>Numbers</h2>
            <table><tr><th>run</th><th>status</th><th>steps</th><th>MSE</th><th>PSNR dB</th><th>SSIM</th><th>KL nats</th><th>active units</th><th>ELBO nats</th><th>NLL ≤ nats</th><th>NLL bits/dim</th><th>Fréchet to N(0,I), means</th><th>Fréchet, aggregate q(z)</th></tr>

            """);
        foreach (var r in rows)
            sb.Append($"<tr><td class=\"l\">{E(r.Label)}</td><td class=\"l\">{E(r.Status)}</td><td>{r.Steps}</td><td>{N(r.Mse, "F5")}</td><td>{N(r.Psnr, "F2")}</td><td>{N(r.Ssim, "F4")}</td>" +
                      $"<td>{N(r.Kl, "F2")}</td><td>{r.ActiveUnits}</td><td>{N(r.ElboNats, "F1")}</td><td>{N(r.NllNats, "F1")}</td><td>{N(r.NllBitsPerDim, "F4")}</td><td>{N(r.Frechet, "F2")}</td><td>{N(r.FrechetAggregate, "F2")}</td></tr>\n");
        sb.Append("</table>\n<h2>All runs</h2>\n<p>Left: the same validation images (top row) and each run's reconstructions, one row per run in the table's order. Right: each run's decodes of the same z ~ N(0, I).</p>\n");
        sb.Append(Img(dir.Overview, "overview")).Append('\n');
        sb.Append("<h2>Per run</h2>\n<p>Left: originals above reconstructions. Right: samples.</p>\n<table>\n");
        foreach (var r in rows)
            sb.Append($"<tr><td class=\"l\"><b>{E(r.Label)}</b><br>MSE {N(r.Mse, "F5")}<br>KL {N(r.Kl, "F2")}</td><td class=\"l\">{Img(dir.Grid(Path.GetFileName(r.Run)), r.Label)}</td></tr>\n");
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }
}

/// <summary>The sweep's rate–distortion chart: KL per image (rate) against per-pixel MSE (distortion).</summary>
internal static class RateDistortionPlot
{
    public static void Save(string path, IReadOnlyList<SweepRow> rows)
    {
        var plot = new ScottPlot.Plot();
        var vae = rows.Where(r => r.Model == "vae" && r.Kl is not null && r.Mse is not null).OrderBy(r => r.KlWeight).ToList();
        if (vae.Count > 0)
        {
            var line = plot.Add.Scatter(vae.Select(r => r.Kl!.Value).ToArray(), vae.Select(r => r.Mse!.Value).ToArray());
            line.LegendText = "VAE, one point per kl_weight";
            line.MarkerSize = 8;
            foreach (var r in vae)
            {
                var label = plot.Add.Text($"  β={SweepPlan.Format(r.KlWeight!.Value)}", r.Kl!.Value, r.Mse!.Value);
                label.LabelFontSize = 13;
            }
        }
        foreach (var ae in rows.Where(r => r.Model == "ae" && r.Mse is not null))
        {
            var line = plot.Add.HorizontalLine(ae.Mse!.Value);
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.LegendText = "AE (no KL term)";
        }
        plot.Title("Rate–distortion over kl_weight (β)");
        plot.XLabel("rate: KL(q(z|x) ‖ N(0, I)) per image, nats");
        plot.YLabel("distortion: MSE per pixel");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.Axes.Margins(horizontal: 0.12, vertical: 0.1);   // room for the last point's label
        var bytes = plot.GetImageBytes(720, 480, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }
}
