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

    public static void Write(SweepDirectory dir, SweepPlan plan, IReadOnlyList<SweepRow> rows)
    {
        Directory.CreateDirectory(dir.Grids);
        var finished = rows.Where(r => r.Status == "completed").ToList();
        Tensor? originals = null;
        var overviewRows = new List<(Tensor Reconstructions, Tensor Samples)>();
        try
        {
            foreach (var row in finished)
            {
                var (x, reconstructions, samplesOut, imageSize) = SweepTraining.Showcase(row.Run, plan.Base.Runtime.Device, GridImages, SampleSeed);
                using var samples = samplesOut;
                if (originals is null) originals = x; else x.Dispose();
                WritePanel(dir.Grid(Path.GetFileName(row.Run)), originals, reconstructions, samples, imageSize);
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

        var groups = SweepSummary.Groups(rows);
        bool seeds = plan.SeedAxis is { Values.Count: > 1 };
        RateDistortionPlot.Save(dir.RateDistortion, plan, groups);
        RateDistortionPlot.SaveFd(dir.FdRate, plan, groups);
        var axes = plan.Axes.Select(a => new { key = a.Key, values = a.Values });
        object summary = seeds
            ? new { name = plan.Name, axes, spread = "std: sample standard deviation over seeds (n - 1); min and max also given", rows, groups }
            : new { name = plan.Name, axes, rows };
        Json.WriteAllTextAtomic(dir.SummaryJson, JsonSerializer.Serialize(summary, Json.Indented) + "\n");
        Json.WriteAllTextAtomic(dir.SummaryCsv, Csv(plan, rows));
        if (seeds) Json.WriteAllTextAtomic(dir.SeedSummaryCsv, SeedCsv(plan, groups));
        else File.Delete(dir.SeedSummaryCsv);
        Json.WriteAllTextAtomic(dir.Html, Html(dir, plan, rows, groups, seeds));
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


    /// <summary>The FD's feature network and N as the page states them (one value when every run agrees).</summary>
    private static string FdNet(IReadOnlyList<SweepRow> rows) =>
        string.Join(" / ", rows.Select(r => r.FdNet).OfType<string>().Distinct().DefaultIfEmpty("(not measured)"));

    private static string FdN(IReadOnlyList<SweepRow> rows) =>
        string.Join(" / ", rows.Select(r => r.FdImages).OfType<int>().Distinct().Select(n => n.ToString("N0", CultureInfo.InvariantCulture)).DefaultIfEmpty("N"));

    private static string Field(string text) =>
        text.IndexOfAny([',', '"', '\n']) >= 0 ? '"' + text.Replace("\"", "\"\"") + '"' : text;

    /// <summary>The axes other than kl_weight, which has its own column in every summary.</summary>
    private static List<string> AxisColumns(SweepPlan plan) => plan.Axes.Select(a => a.Key).Where(k => k != "kl_weight").ToList();

    private static string Csv(SweepPlan plan, IReadOnlyList<SweepRow> rows)
    {
        var axes = AxisColumns(plan);
        var sb = new StringBuilder(string.Join(',', ["label", "model", .. axes, "kl_weight", "status", "steps", "train_seconds", "mse", "psnr", "ssim", "kl",
                                                     "active_units", "elbo_nats", "nll_nats", "nll_bits_per_dim", "frechet", "frechet_aggregate",
                                                     "fd", "fd_reconstructions", "fd_floor", "fd_images", "kid", "precision", "recall", "run"]) + "\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', [Field(r.Label), r.Model, .. axes.Select(k => Field(r.Settings.GetValueOrDefault(k, ""))), N(r.KlWeight), r.Status,
                r.Steps.ToString(CultureInfo.InvariantCulture), N(r.TrainSeconds, "F1"),
                N(r.Mse), N(r.Psnr), N(r.Ssim), N(r.Kl), r.ActiveUnits?.ToString(CultureInfo.InvariantCulture) ?? "",
                N(r.ElboNats), N(r.NllNats), N(r.NllBitsPerDim), N(r.Frechet), N(r.FrechetAggregate),
                N(r.Fd), N(r.FdReconstructions), N(r.FdFloor), r.FdImages?.ToString(CultureInfo.InvariantCulture) ?? "",
                N(r.Kid), N(r.Precision), N(r.Recall), Field(r.Run)]));
        return sb.ToString();
    }

    private static readonly (string Name, Func<SweepGroup, Spread?> Get)[] GroupMetrics =
    [
        ("mse", g => g.Mse), ("psnr", g => g.Psnr), ("ssim", g => g.Ssim), ("kl", g => g.Kl), ("active_units", g => g.ActiveUnits),
        ("elbo_nats", g => g.ElboNats), ("nll_nats", g => g.NllNats), ("nll_bits_per_dim", g => g.NllBitsPerDim),
        ("frechet", g => g.Frechet), ("frechet_aggregate", g => g.FrechetAggregate),
        ("fd", g => g.Fd), ("fd_reconstructions", g => g.FdReconstructions), ("fd_floor", g => g.FdFloor),
        ("kid", g => g.Kid), ("precision", g => g.Precision), ("recall", g => g.Recall),
    ];

    /// <summary>One line per setting: each metric's mean, sample std (n − 1), min and max over the seeds.</summary>
    private static string SeedCsv(SweepPlan plan, IReadOnlyList<SweepGroup> groups)
    {
        var axes = AxisColumns(plan).Where(k => k != SweepGrid.SeedKey).ToList();
        bool kl = plan.Axes.Any(a => a.Key == "kl_weight");
        List<string> header = ["label", "model", .. axes];
        if (kl) header.Add("kl_weight");
        header.AddRange(["runs", "completed"]);
        foreach (var (name, _) in GroupMetrics) header.AddRange([$"{name}_mean", $"{name}_std", $"{name}_min", $"{name}_max"]);
        var sb = new StringBuilder(string.Join(',', header) + "\n");
        foreach (var g in groups)
        {
            List<string> line = [Field(g.Label), g.Model, .. axes.Select(k => Field(g.Settings.GetValueOrDefault(k, "")))];
            if (kl) line.Add(g.Settings.GetValueOrDefault("kl_weight", ""));
            line.AddRange([g.Runs.ToString(CultureInfo.InvariantCulture), g.Completed.ToString(CultureInfo.InvariantCulture)]);
            foreach (var (_, get) in GroupMetrics)
                line.AddRange(get(g) is Spread s ? [N(s.Mean), N(s.Std), N(s.Min), N(s.Max)] : ["", "", "", ""]);
            sb.AppendLine(string.Join(',', line));
        }
        return sb.ToString();
    }

    private static string Html(SweepDirectory dir, SweepPlan plan, IReadOnlyList<SweepRow> rows, IReadOnlyList<SweepGroup> groups, bool seeds)
    {
        static string Img(string path, string alt) =>
            File.Exists(path) ? $"<img src=\"data:image/png;base64,{Convert.ToBase64String(File.ReadAllBytes(path))}\" alt=\"{WebUtility.HtmlEncode(alt)}\">" : "";
        static string E(string s) => WebUtility.HtmlEncode(s);
        string S(Spread? s, string format) => s is null ? "" : seeds ? $"{N(s.Mean, format)} ± {N(s.Std, format)}" : N(s.Mean, format);
        var b = plan.Base;
        string over = string.Join(" × ", plan.Axes.Select(a => a.Key));
        string heading = plan.Axes is [{ Key: "kl_weight" }] ? "what kl_weight does" : $"sweep over {over}";
        string varied = string.Join("; ", plan.Axes.Select(a => $"{a.Key} ∈ {{{string.Join(", ", a.Values)}}}"));
        var sb = new StringBuilder();
        sb.Append($$"""
            <!doctype html>
            <html><head><meta charset="utf-8"><title>{{E(plan.Name)}}: {{E(over)}} sweep</title>
            <style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}img{image-rendering:pixelated}</style>
            </head><body>
            <h1>{{E(plan.Name)}}: {{E(heading)}}</h1>
            <p>Varied: {{E(varied)}}{{(plan.IncludeAe ? "; plus plain AE runs" : "")}}. The rest is the same for every run: preset {{E(b.Preset ?? "custom")}}, data {{E(b.Data.Source)}}, {{b.Train.Epochs}} epoch(s){{(b.Train.MaxSteps is int m ? $" (at most {m} steps)" : "")}}, batch {{b.Train.BatchSize}}, seed {{b.Train.Seed}}, kl_weight {{N(b.Train.KlWeight)}}, KL schedule {{E(b.Train.KlSchedule)}}{{(b.Train.FreeBits > 0 ? $", free bits {N(b.Train.FreeBits)}" : "")}} (unless on an axis). Metrics from <code>vae eval</code> on the validation split, last checkpoint; likelihoods with k = {{plan.Eval.ImportanceSamples}} and decoder σ² = {{N(plan.Eval.DecoderVariance)}}.{{(seeds ? $" Numbers per setting are the mean ± the sample standard deviation (n − 1) over the {plan.SeedAxis!.Values.Count} seeds; summary_over_seeds.csv also has min and max." : "")}}</p>
            <h2>Rate–distortion</h2>
            {{Img(dir.RateDistortion, "rate-distortion plot")}}
            {{Img(dir.FdRate, "FD against rate")}}
            <p>FD: the Fréchet distance in the {{E(FdNet(rows))}} feature network between {{E(FdN(rows))}} samples of z ~ N(0, I) (an AE's too) and the validation images; FD of reconstructions: the same against the model's reconstructions; floor: a disjoint real split at the same N, a perfect generator's score (<code>vae eval</code>, docs/fd.md).</p>

            """);

        // The pivot: first axis down, the other axes' combinations across, one table per headline metric.
        var axes = plan.SettingAxes;
        if (axes.Count >= 2)
        {
            var columns = groups.Where(g => !g.IsAeRow)
                .Select(g => string.Join(", ", axes.Skip(1).Select(a => $"{a.Key}={g.Settings.GetValueOrDefault(a.Key)}"))).Distinct().ToList();
            foreach (var (title, get, format) in new (string, Func<SweepGroup, Spread?>, string)[]
                     { ("MSE per pixel", g => g.Mse, "F5"), ("KL nats per image", g => g.Kl, "F2"), ("NLL ≤ bits/dim", g => g.NllBitsPerDim, "F4"),
                       ("FD of samples", g => g.Fd, "F2") })
            {
                sb.Append($"<h2>{E(title)}</h2>\n<table><tr><th class=\"l\">{E(axes[0].Key)}</th>");
                foreach (var c in columns) sb.Append($"<th>{E(c)}</th>");
                sb.Append("</tr>\n");
                foreach (var value in axes[0].Values)
                {
                    sb.Append($"<tr><td class=\"l\">{E(value)}</td>");
                    foreach (var c in columns)
                    {
                        var g = groups.FirstOrDefault(g => g.Settings.GetValueOrDefault(axes[0].Key) == value && !g.IsAeRow &&
                                                           string.Join(", ", axes.Skip(1).Select(a => $"{a.Key}={g.Settings.GetValueOrDefault(a.Key)}")) == c);
                        sb.Append($"<td>{(g is null ? "" : g.Completed == 0 ? "diverged" : E(S(get(g), format)))}</td>");
                    }
                    sb.Append("</tr>\n");
                }
                sb.Append("</table>\n");
            }
        }

        sb.Append("<h2>Numbers</h2>\n<table><tr><th class=\"l\">run</th><th class=\"l\">status</th>" + (seeds ? "<th>runs</th>" : "<th>steps</th>") +
                  "<th>MSE</th><th>PSNR dB</th><th>SSIM</th><th>KL nats</th><th>active units</th><th>ELBO nats</th><th>NLL ≤ nats</th><th>NLL bits/dim</th><th>Fréchet to N(0,I), means</th><th>Fréchet, aggregate q(z)</th><th>FD samples</th><th>FD reconstructions</th><th>FD floor</th><th>KID samples</th><th>precision</th><th>recall</th></tr>\n");
        if (seeds)
            foreach (var g in groups)
                sb.Append($"<tr><td class=\"l\">{E(g.Label)}</td><td class=\"l\">{g.Completed} of {g.Runs} completed</td><td>{g.Runs}</td><td>{S(g.Mse, "F5")}</td><td>{S(g.Psnr, "F2")}</td><td>{S(g.Ssim, "F4")}</td>" +
                          $"<td>{S(g.Kl, "F2")}</td><td>{S(g.ActiveUnits, "F1")}</td><td>{S(g.ElboNats, "F1")}</td><td>{S(g.NllNats, "F1")}</td><td>{S(g.NllBitsPerDim, "F4")}</td><td>{S(g.Frechet, "F2")}</td><td>{S(g.FrechetAggregate, "F2")}</td>" +
                          $"<td>{S(g.Fd, "F2")}</td><td>{S(g.FdReconstructions, "F2")}</td><td>{S(g.FdFloor, "F2")}</td>" +
                          $"<td>{S(g.Kid, "F4")}</td><td>{S(g.Precision, "F3")}</td><td>{S(g.Recall, "F3")}</td></tr>\n");
        else
            foreach (var r in rows)
                sb.Append($"<tr><td class=\"l\">{E(r.Label)}</td><td class=\"l\">{E(r.Status)}</td><td>{r.Steps}</td><td>{N(r.Mse, "F5")}</td><td>{N(r.Psnr, "F2")}</td><td>{N(r.Ssim, "F4")}</td>" +
                          $"<td>{N(r.Kl, "F2")}</td><td>{r.ActiveUnits}</td><td>{N(r.ElboNats, "F1")}</td><td>{N(r.NllNats, "F1")}</td><td>{N(r.NllBitsPerDim, "F4")}</td><td>{N(r.Frechet, "F2")}</td><td>{N(r.FrechetAggregate, "F2")}</td>" +
                          $"<td>{N(r.Fd, "F2")}</td><td>{N(r.FdReconstructions, "F2")}</td><td>{N(r.FdFloor, "F2")}</td>" +
                          $"<td>{N(r.Kid, "F4")}</td><td>{N(r.Precision, "F3")}</td><td>{N(r.Recall, "F3")}</td></tr>\n");
        sb.Append("</table>\n<h2>All runs</h2>\n<p>Left: the same validation images (top row) and each run's reconstructions, one row per completed run in the order of summary.csv. Right: each run's decodes of the same z ~ N(0, I).</p>\n");
        sb.Append(Img(dir.Overview, "overview")).Append('\n');
        sb.Append("<h2>Per run</h2>\n<p>Left: originals above reconstructions. Right: samples.</p>\n<table>\n");
        foreach (var r in rows)
            sb.Append($"<tr><td class=\"l\"><b>{E(r.Label)}</b><br>MSE {N(r.Mse, "F5")}<br>KL {N(r.Kl, "F2")}<br>FD {N(r.Fd, "F2")}</td><td class=\"l\">{Img(dir.Grid(Path.GetFileName(r.Run)), r.Label)}</td></tr>\n");
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }
}

/// <summary>
/// The sweep's rate–distortion chart: KL per image (rate) against per-pixel MSE (distortion), one point per value of
/// the first axis, one line per combination of the other axes (the seed axis averaged), a dashed line per AE.
/// </summary>
internal static class RateDistortionPlot
{
    /// <summary>The families of a line's points, as the legend names them (VAE for the plain one).</summary>
    private static string Family(IEnumerable<SweepGroup> points) =>
        string.Join("/", points.Select(g => g.Model == Config.ModelKinds.Vae ? "VAE" : g.Model).Distinct());

    /// <summary>rate_distortion.png: KL (x) against per-pixel MSE (y); a dashed line per AE.</summary>
    public static void Save(string path, SweepPlan plan, IReadOnlyList<SweepGroup> groups) =>
        Draw(path, plan, groups, g => g.Mse, "Rate–distortion", "distortion: MSE per pixel", ae => $"{ae.Label} (no KL term)", floor: false);

    /// <summary>
    /// fd_rate.png: the image-space FD of N(0, I) samples (y) against the KL per image (x); the AE's FD dashed and the
    /// real floor dotted. Where rate–distortion shows what kl_weight costs in reconstructions, this shows what it buys
    /// in generation.
    /// </summary>
    public static void SaveFd(string path, SweepPlan plan, IReadOnlyList<SweepGroup> groups) =>
        Draw(path, plan, groups, g => g.Fd, "Generation against rate", "FD of samples (lower is better)", ae => $"{ae.Label}, z ~ N(0, I)", floor: true);

    /// <summary>One point per value of the first axis, one line per combination of the others (seeds averaged) for the
    /// families with a KL term; <paramref name="y"/> of each AE as a horizontal line.</summary>
    private static void Draw(string path, SweepPlan plan, IReadOnlyList<SweepGroup> groups, Func<SweepGroup, Spread?> y,
                             string title, string yLabel, Func<SweepGroup, string> aeLegend, bool floor)
    {
        var plot = new ScottPlot.Plot();
        var axes = plan.SettingAxes;
        var first = axes.FirstOrDefault();
        var withKl = groups.Where(g => g.Kl is not null && y(g) is not null).ToList();
        string Series(SweepGroup g) => string.Join(", ", axes.Skip(1).Select(a => $"{a.Key}={g.Settings.GetValueOrDefault(a.Key)}"));
        int Position(SweepGroup g) => first is null ? 0 : first.Values.ToList().IndexOf(g.Settings.GetValueOrDefault(first.Key, ""));
        var palette = new ScottPlot.Palettes.Category10();
        int index = 0;
        foreach (var series in withKl.GroupBy(Series))
        {
            var points = series.OrderBy(Position).ToList();
            var line = plot.Add.Scatter(points.Select(g => g.Kl!.Mean).ToArray(), points.Select(g => y(g)!.Mean).ToArray());
            line.Color = palette.GetColor(index++);
            line.MarkerSize = 8;
            line.LegendText = series.Key.Length > 0 ? series.Key : first is null ? Family(points) : $"{Family(points)}, one point per {first.Key}";
            if (first is null) continue;
            foreach (var g in points)
            {
                string value = g.Settings.GetValueOrDefault(first.Key, "");
                plot.Add.Text(first.Key == "kl_weight" ? $"  β={value}" : $"  {value}", g.Kl!.Mean, y(g)!.Mean).LabelFontSize = 13;
            }
        }
        foreach (var ae in groups.Where(g => g.Model == Config.ModelKinds.Ae && y(g) is not null))
        {
            var line = plot.Add.HorizontalLine(y(ae)!.Mean);
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.LegendText = aeLegend(ae);
        }
        var floors = floor ? groups.Select(g => g.FdFloor?.Mean).OfType<double>().ToList() : [];
        if (floors.Count > 0)
        {
            var line = plot.Add.HorizontalLine(floors.Average());
            line.LinePattern = ScottPlot.LinePattern.Dotted;
            line.Color = ScottPlot.Colors.Gray;
            line.LegendText = "floor: real vs real at the same N";
        }
        bool seeds = plan.SeedAxis is { Values.Count: > 1 };
        string over = first is null ? "" : first.Key == "kl_weight" ? " over kl_weight (β)" : $" over {first.Key}";
        plot.Title($"{title}{over}{(seeds ? $", mean of {plan.SeedAxis!.Values.Count} seeds" : "")}");
        plot.XLabel("rate: KL(q(z|x) ‖ N(0, I)) per image, nats");
        plot.YLabel(yLabel);
        plot.ShowLegend(ScottPlot.Edge.Bottom);                 // below the axes: never over a point
        plot.Axes.Margins(horizontal: 0.18, vertical: 0.1);     // room for the last point's label
        var bytes = plot.GetImageBytes(720, 520, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }
}
