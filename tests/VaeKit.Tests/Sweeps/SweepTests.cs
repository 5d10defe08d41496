using System.Text.Json;
using SkiaSharp;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Sweeps;

/// <summary>The lab's question end to end: what does kl_weight do? Three short tiny-preset runs on synthetic faces.</summary>
[Trait("Category", "Slow")]
public class SweepTests
{
    [Fact]
    public void A_sweep_over_families_labels_its_rows_by_family()
    {
        using var dir = new TempDir();
        var (exit, output, error) = CliRunner.Run("sweep", "--grid", "model=vae,sigma-vae,vq-vae", "--preset", "tiny", "--widths", "8,16", "--latent", "8",
                                                  "--data", "synthetic:192", "--val-fraction", "0.25", "--batch-size", "32", "--max-steps", "6",
                                                  "--eval-samples", "2", "--name", "f", "--sweeps-dir", dir["sweeps"], "--cache-dir", dir["cache"]);
        Assert.True(exit == 0, output + error);
        using var summary = JsonDocument.Parse(File.ReadAllText(dir["sweeps/f/summary.json"]));
        var rows = summary.RootElement.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(["model=vae", "model=sigma-vae", "model=vq-vae"], rows.Select(r => r.GetProperty("label").GetString()));
        Assert.Equal(["vae", "sigma-vae", "vq-vae"], rows.Select(r => r.GetProperty("model").GetString()));
        // Each run is its family: config.json says so, and only the families with a KL term report one.
        foreach (var (family, row) in new[] { "vae", "sigma-vae", "vq-vae" }.Zip(rows))
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(row.GetProperty("run").GetString()!, "config.json")));
            Assert.Equal(family, config.RootElement.GetProperty("model").GetProperty("kind").GetString());
            Assert.Equal(family != "vq-vae", row.TryGetProperty("kl", out var kl) && kl.ValueKind == JsonValueKind.Number);
        }
        Assert.Contains("model=sigma-vae", File.ReadAllText(dir["sweeps/f/index.html"]));
    }

    [Fact]
    public void A_sweep_moves_along_the_rate_distortion_curve_and_a_rerun_redoes_nothing()
    {
        using var dir = new TempDir();
        string[] args = ["sweep", "--kl-weights", "0.1,1,10", "--preset", "tiny", "--data", "synthetic:640", "--val-fraction", "0.2",
                         "--batch-size", "32", "--epochs", "4", "--max-steps", "64", "--eval-samples", "4",
                         "--name", "s", "--sweeps-dir", dir["sweeps"], "--cache-dir", dir["cache"]];
        var (exit, output, error) = CliRunner.Run(args);
        Assert.True(exit == 0, output + error);
        Assert.Contains("run 1 of 3", output);
        Assert.Contains("run 3 of 3", output);

        string sweep = dir["sweeps/s"];
        foreach (var file in new[] { "summary.csv", "summary.json", "rate_distortion.png", "overview.png", "index.html",
                                     "grids/kl-0.1.png", "grids/kl-1.png", "grids/kl-10.png", "runs/kl-1/eval.json" })
            Assert.True(File.Exists(Path.Combine(sweep, file)), file);
        using (var plot = SKBitmap.Decode(Path.Combine(sweep, "rate_distortion.png")))
            Assert.True(plot.Width > 300 && plot.Height > 200);
        string html = File.ReadAllText(Path.Combine(sweep, "index.html"));
        Assert.Contains("data:image/png;base64,", html);
        Assert.DoesNotContain("src=\"grids/", html);   // self-contained

        // The textbook direction: more weight on the KL buys a smaller KL (rate) with a larger MSE (distortion).
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(sweep, "summary.json")));
        var rows = summary.RootElement.GetProperty("rows").EnumerateArray()
            .Select(r => (Weight: r.GetProperty("kl_weight").GetDouble(), Kl: r.GetProperty("kl").GetDouble(), Mse: r.GetProperty("mse").GetDouble()))
            .ToList();
        Assert.Equal([0.1, 1, 10], rows.Select(r => r.Weight));
        string table = string.Join("; ", rows.Select(r => $"β {r.Weight}: kl {r.Kl:F2} mse {r.Mse:F5}"));
        Assert.True(rows[0].Kl > rows[1].Kl && rows[1].Kl > rows[2].Kl, table);
        Assert.True(rows[0].Mse < rows[1].Mse && rows[1].Mse < rows[2].Mse, table);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(sweep, "summary.csv")).Length - 1);

        // Generation is measured per run: the image-space FD of samples, of reconstructions and the real floor at the
        // same N (the 128 validation images), in the csv, the page and its FD-against-rate plot.
        foreach (var r in summary.RootElement.GetProperty("rows").EnumerateArray())
        {
            Assert.Equal(128, r.GetProperty("fd_images").GetInt32());
            Assert.Equal("shipped:faces", r.GetProperty("fd_net").GetString());
            double fd = r.GetProperty("fd").GetDouble(), floor = r.GetProperty("fd_floor").GetDouble();
            Assert.True(double.IsFinite(r.GetProperty("fd_reconstructions").GetDouble()));
            Assert.True(fd > floor, $"samples {fd} vs real floor {floor}");
        }
        Assert.Contains("fd,fd_reconstructions,fd_floor,fd_images,kid,precision,recall", File.ReadLines(Path.Combine(sweep, "summary.csv")).First());
        foreach (var r in summary.RootElement.GetProperty("rows").EnumerateArray())
            Assert.InRange(r.GetProperty("precision").GetDouble(), 0, 1);
        using (var fdPlot = SKBitmap.Decode(Path.Combine(sweep, "fd_rate.png")))
            Assert.True(fdPlot.Width > 300 && fdPlot.Height > 200);
        Assert.Contains("alt=\"FD against rate\"", html);
        Assert.Contains("<th>FD samples</th>", html);

        // Running the same sweep again trains nothing; other settings under the same name are refused.
        long steps = File.ReadAllLines(Path.Combine(sweep, "runs/kl-1/metrics.jsonl")).Length;
        var (again, againOut, againErr) = CliRunner.Run(args);
        Assert.True(again == 0, againOut + againErr);
        Assert.Equal(3, againOut.Split("finished earlier, not redone").Length - 1);
        Assert.Equal(steps, File.ReadAllLines(Path.Combine(sweep, "runs/kl-1/metrics.jsonl")).Length);
        var (other, _, otherErr) = CliRunner.Run([.. args.Select(a => a == "0.1,1,10" ? "0.1,1" : a)]);
        Assert.Equal(2, other);
        Assert.Contains("other settings", otherErr);

        // The runs are ordinary runs: eval, traverse and spherical interpolation work on them.
        string run = Path.Combine(sweep, "runs/kl-1");
        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", run, "--json", "--samples", "2", "--limit", "64");
        Assert.True(evalExit == 0, evalOut + evalErr);
        using (var report = JsonDocument.Parse(evalOut))
        {
            Assert.Equal(64, report.RootElement.GetProperty("images").GetInt32());
            Assert.Equal(32, report.RootElement.GetProperty("kl_per_dimension").GetArrayLength());
            Assert.True(report.RootElement.GetProperty("nll_bits_per_dim").GetDouble() > 0);
        }
        var (tableExit, tableOut, _) = CliRunner.Run("eval", "--run", run, "--samples", "2", "--limit", "64");
        Assert.Equal(0, tableExit);
        Assert.Contains("active units", tableOut);

        var (travExit, travOut, travErr) = CliRunner.Run("traverse", "--run", run, "--dims", "3", "--steps", "7", "--out", dir["t.png"], "--scale", "1");
        Assert.True(travExit == 0, travOut + travErr);
        using (var bitmap = SKBitmap.Decode(dir["t.png"]))
            Assert.Equal((7 * 34 + 2, 3 * 34 + 2), (bitmap.Width, bitmap.Height));   // 32 px tiles, 2 px padding
        var (slerpExit, slerpOut, slerpErr) = CliRunner.Run("interpolate", "--run", run, "--mode", "slerp", "--pairs", "2", "--out", dir["i.png"]);
        Assert.True(slerpExit == 0, slerpOut + slerpErr);
        Assert.Contains("slerp", slerpOut);
    }
    [Fact]
    public void A_seed_axis_gives_each_setting_its_mean_and_standard_deviation_and_the_page_a_pivot()
    {
        using var dir = new TempDir();
        var (exit, output, error) = CliRunner.Run("sweep", "--grid", "kl_weight=1,10", "--grid", "latent=8", "--grid", "seed=0,1", "--preset", "tiny",
            "--data", "synthetic:128", "--val-fraction", "0.25", "--batch-size", "16", "--epochs", "1", "--max-steps", "2", "--eval-samples", "1",
            "--eval-limit", "16", "--threads", "1", "--name", "s", "--sweeps-dir", dir["sweeps"], "--cache-dir", dir["cache"]);
        Assert.True(exit == 0, output + error);
        string sweep = dir["sweeps/s"];
        Assert.True(Directory.Exists(Path.Combine(sweep, "runs/kl-10_latent-8_seed-1")));

        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(sweep, "summary.json")));
        var mse = summary.RootElement.GetProperty("rows").EnumerateArray()
            .ToLookup(r => r.GetProperty("settings").GetProperty("kl_weight").GetString(), r => r.GetProperty("mse").GetDouble());
        Assert.NotEqual(mse["1"].First(), mse["1"].Last());   // the seeds differ
        var groups = summary.RootElement.GetProperty("groups").EnumerateArray().ToList();
        Assert.Equal(2, groups.Count);
        var first = groups[0].GetProperty("mse");
        Assert.Equal(mse["1"].Average(), first.GetProperty("mean").GetDouble(), 12);
        Assert.Equal(Math.Abs(mse["1"].First() - mse["1"].Last()) / Math.Sqrt(2), first.GetProperty("std").GetDouble(), 12);
        Assert.Equal(mse["1"].Min(), first.GetProperty("min").GetDouble());
        Assert.Equal(2, groups[0].GetProperty("runs").GetInt32());

        var csv = File.ReadAllLines(Path.Combine(sweep, "summary_over_seeds.csv"));
        Assert.Equal(3, csv.Length);
        Assert.StartsWith("label,model,latent,kl_weight,runs,completed,mse_mean,mse_std,mse_min,mse_max,", csv[0]);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(sweep, "summary.csv")).Length);
        Assert.StartsWith("label,model,latent,seed,kl_weight,", File.ReadAllLines(Path.Combine(sweep, "summary.csv"))[0]);

        string html = File.ReadAllText(Path.Combine(sweep, "index.html"));
        Assert.Contains("sample standard deviation (n − 1) over the 2 seeds", html);
        Assert.Contains("<h2>MSE per pixel</h2>\n<table><tr><th class=\"l\">kl_weight</th><th>latent=8</th>", html);
        Assert.Contains(" ± ", html);
    }
}
