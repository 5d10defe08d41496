using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SkiaSharp;
using VaeKit.Reporting;
using VaeKit.Tests.Cli;
using VaeKit.Tests.Tracking;

namespace VaeKit.Tests.Reporting;

/// <summary>The HTML report: self-contained, all curves and grids, and it really renders in headless Chromium.</summary>
public class HtmlReportTests(Xunit.Abstractions.ITestOutputHelper log)
{
    /// <summary>A run directory as <c>vae train</c> leaves it: config.json, metrics.jsonl (a NaN included) and grids.</summary>
    internal static string MakeRun(TempDir dir, string name, double lr, int epochs = 3, int stepsPerEpoch = 8)
    {
        string run = dir[Path.Combine("runs", name)];
        Directory.CreateDirectory(Path.Combine(run, "images"));
        File.WriteAllText(Path.Combine(run, "config.json"), new JsonObject
        {
            ["name"] = name, ["preset"] = "tiny", ["train"] = new JsonObject { ["learning_rate"] = lr, ["epochs"] = epochs }, ["parameters"] = 225427,
        }.ToJsonString());
        var lines = new List<string>();
        int step = 0;
        for (int epoch = 1; epoch <= epochs; epoch++)
        {
            for (int b = 0; b < stepsPerEpoch; b++)
            {
                step++;
                double loss = 300 / Math.Sqrt(step) * (1 + lr * 100);
                lines.Add(new JsonObject
                {
                    ["type"] = "train", ["step"] = step, ["epoch"] = epoch, ["loss"] = step == 3 ? "NaN" : loss, ["reconstruction"] = loss * 0.9,
                    ["kl"] = loss * 0.1, ["mse"] = loss / 3072, ["psnr"] = 10 + Math.Log(step), ["lr"] = lr * Math.Min(1, step / 5.0),
                }.ToJsonString());
            }
            lines.Add(new JsonObject
            {
                ["type"] = "epoch", ["epoch"] = epoch, ["step"] = step, ["train_loss"] = 250.0 / epoch, ["val_loss"] = 240.0 / epoch,
                ["val_reconstruction"] = 220.0 / epoch, ["val_kl"] = 20.0 / epoch, ["val_mse"] = 0.05 / epoch, ["val_psnr"] = 13 + epoch, ["best"] = true,
            }.ToJsonString());
            Grid(Path.Combine(run, "images", $"epoch_{epoch:D3}_reconstruction.png"), epoch, SKColors.SteelBlue);
            Grid(Path.Combine(run, "images", $"epoch_{epoch:D3}_samples.png"), epoch, SKColors.IndianRed);
        }
        File.WriteAllLines(Path.Combine(run, "metrics.jsonl"), lines);
        return run;
    }

    private static void Grid(string path, int epoch, SKColor color)
    {
        using var bitmap = new SKBitmap(128, 128);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var paint = new SKPaint { Color = color };
            for (int i = 0; i < 4 * epoch; i++) canvas.DrawRect(i % 4 * 32 + 4, i / 4 * 32 + 4, 24, 24, paint);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void One_file_holds_curves_grids_and_a_side_by_side_table_with_nothing_fetched()
    {
        using var dir = new TempDir();
        string a = MakeRun(dir, "lr-small", 0.001), b = MakeRun(dir, "lr-large", 0.01, epochs: 2);
        var (exit, output, error) = CliRunner.Run("report", a, b, "--out", dir["both.html"]);
        Assert.True(exit == 0, output + error);
        string html = File.ReadAllText(dir["both.html"]);

        Assert.Contains($"Chart.js v{HtmlReport.ChartJsVersion}", html);
        Assert.Contains("Permission is hereby granted", html);                 // its MIT licence travels with it
        Assert.DoesNotMatch(new Regex(@"<(script|img|link)[^>]+(src|href)\s*=\s*""?(https?:)?//", RegexOptions.IgnoreCase), html);
        Assert.Equal(2 * (3 + 2), Regex.Matches(html, "data:image/png;base64,").Count);   // both grids of every epoch of both runs
        Assert.Contains("<tr class=\"differs\"><td>train.learning_rate</td><td>0.001</td><td>0.01</td></tr>", html);
        Assert.Contains("<td>final val loss</td><td>80</td><td>120</td>", html);

        // One run: written beside it by default, with its config table.
        (exit, output, error) = CliRunner.Run("report", a);
        Assert.True(exit == 0, output + error);
        Assert.True(File.Exists(Path.Combine(a, "report.html")));
        (exit, _, error) = CliRunner.Run("report", dir["nothing-here"]);
        Assert.Equal(2, exit);
        Assert.Contains("not a run directory", error);
    }

    [Fact]
    public void A_long_run_is_thinned_to_a_few_thousand_points_per_curve_keeping_the_last()
    {
        using var dir = new TempDir();
        string run = MakeRun(dir, "long", 0.001, epochs: 2, stepsPerEpoch: 6000);
        string page = dir["long.html"];
        HtmlReport.Write([run], page);
        string json = Regex.Match(File.ReadAllText(page), "<script type=\"application/json\" id=\"data\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value;
        var loss = (JsonArray)JsonNode.Parse(json)!["runs"]![0]!["series"]!["train_loss"]!;
        Assert.InRange(loss.Count, 3000, 4001);
        Assert.Equal(12000, loss[^1]![0]!.GetValue<double>());
    }

    [Fact]
    public void Charts_come_from_the_declared_metrics_and_any_new_term_gets_one_under_its_name()
    {
        using var dir = new TempDir();
        string run = MakeRun(dir, "sigma", 0.001, epochs: 2);
        // A sigma-vae run whose rows also carry a term no one declared, and numbers declared as not charted.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        config["model"] = new JsonObject { ["kind"] = "sigma-vae" };
        File.WriteAllText(Path.Combine(run, "config.json"), config.ToJsonString());
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        foreach (var row in rows)
            if (row["type"]!.GetValue<string>() == "train")
            {
                row["my_term"] = 1.5; row["sigma"] = 0.3; row["grad_norm"] = 12.0; row["img_per_sec"] = 900.0;
            }
            else
            {
                row["val_my_term"] = 1.25; row["val_sigma"] = 0.25;
            }
        File.WriteAllLines(Path.Combine(run, "metrics.jsonl"), rows.Select(r => r.ToJsonString()));

        string page = dir["sigma.html"];
        HtmlReport.Write([run], page);
        string json = Regex.Match(File.ReadAllText(page), "<script type=\"application/json\" id=\"data\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value;
        var data = JsonNode.Parse(json)!;
        var charts = data["charts"]!.AsArray();
        Assert.Equal(["Loss", "Reconstruction", "KL", "MSE per pixel", "PSNR (dB)", "Decoder σ (σ-VAE)", "my_term", "Learning rate"],
                     charts.Select(c => c!["title"]!.GetValue<string>()));
        var mine = charts.Single(c => c!["title"]!.GetValue<string>() == "my_term")!;
        var series = data["runs"]![0]!["series"]!.AsObject();
        Assert.Equal(16, series[mine["train"]!.GetValue<string>()]!.AsArray().Count);
        Assert.Equal(2, series[mine["validation"]!.GetValue<string>()]!.AsArray().Count);
        Assert.False(series.ContainsKey("train_grad_norm"));             // declared, not charted: not shipped either
        Assert.False(series.ContainsKey("train_img_per_sec"));
    }

    [FactRequiring(Package.Chromium)]
    public void Headless_chromium_renders_the_charts_and_grids_without_console_errors()
    {
        using var dir = new TempDir();
        string a = MakeRun(dir, "lr-small", 0.001), b = MakeRun(dir, "lr-large", 0.01, epochs: 2);
        string page = dir["report.html"];
        HtmlReport.Write([a, b], page);

        var (dom, console) = Chromium(dir, "--dump-dom", page);
        Assert.Contains("data-charts=\"6\"", dom);
        Assert.Contains("data-grids=\"2\"", dom);
        Assert.Matches("<div id=\"errors\"></div>", dom);
        Assert.DoesNotMatch(new Regex(@"CONSOLE.*(Uncaught|Error)", RegexOptions.IgnoreCase), console);
        Assert.Contains("epoch 3 / 3", dom);

        string screenshot = Path.Combine(Path.GetTempPath(), "vaekit-report-screenshot.png");
        File.Delete(screenshot);
        Chromium(dir, $"--screenshot={screenshot}", page);
        using var image = SKBitmap.Decode(screenshot);
        Assert.NotNull(image);
        // Charts (lines in two run colours) and grids (our two grid colours) are on the page, not a blank sheet.
        var colours = new HashSet<uint>();
        for (int y = 0; y < image.Height; y += 3)
            for (int x = 0; x < image.Width; x += 3) colours.Add((uint)image.GetPixel(x, y));
        Assert.True(colours.Count > 50, $"only {colours.Count} colours in the screenshot");
        Assert.Contains((uint)SKColors.SteelBlue, colours);
        Assert.Contains((uint)SKColors.IndianRed, colours);
        log.WriteLine($"screenshot: {screenshot}");
    }

    private static (string Stdout, string Stderr) Chromium(TempDir dir, string mode, string page)
    {
        var start = new ProcessStartInfo("chromium")
        {
            ArgumentList = { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", $"--user-data-dir={dir["chromium-profile"]}",
                             "--window-size=1280,1700", "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", mode, new Uri(page).AbsoluteUri },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("chromium did not finish");
        }
        return (stdout.Result, stderr.Result);
    }
}
