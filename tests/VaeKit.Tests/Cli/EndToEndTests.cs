using System.Text.Json;
using SkiaSharp;

namespace VaeKit.Tests.Cli;

/// <summary>The user's path through the tool: train a little, then sample, reconstruct, interpolate, resume.</summary>
[Trait("Category", "Slow")]
public class EndToEndTests
{
    [Fact]
    public void Train_then_sample_reconstruct_interpolate_and_extend()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        var (exit, output, error) = CliRunner.Run("train", "--data", "synthetic:320", "--widths", "8,16", "--latent", "8",
            "--epochs", "2", "--batch-size", "32", "--name", "e2e", "--runs-dir", runs, "--cache-dir", cache, "--log-every", "2");
        Assert.True(exit == 0, output + error);
        string run = Path.Combine(runs, "e2e");

        foreach (var file in new[] { "config.json", "metrics.jsonl", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                                     "images/epoch_001_reconstruction.png", "images/epoch_002_samples.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*", SearchOption.AllDirectories));

        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))))
        {
            Assert.Equal("synthetic:320", config.RootElement.GetProperty("data").GetProperty("source").GetString());
            Assert.True(config.RootElement.GetProperty("parameters").GetInt64() > 0);
            Assert.False(string.IsNullOrEmpty(config.RootElement.GetProperty("dataset").GetProperty("fingerprint").GetString()));
        }
        var rows = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, rows.Count(r => r.GetProperty("type").GetString() == "epoch"));
        Assert.Contains(rows, r => r.GetProperty("type").GetString() == "train" && r.TryGetProperty("psnr", out _));

        foreach (var (command, stem) in new[] { ("sample", "s.png"), ("reconstruct", "r.png"), ("interpolate", "i.png") })
        {
            string png = dir[stem];
            var (code, o, e) = CliRunner.Run(command, "--run", run, "--out", png, "--scale", "1");
            Assert.True(code == 0, o + e);
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
        }

        File.WriteAllText(dir["file"], "");
        var (blocked, _, blockedErr) = CliRunner.Run("sample", "--run", run, "--out", dir["file/s.png"]);
        Assert.Equal(2, blocked);
        Assert.Contains("Cannot write", blockedErr);

        if (File.Exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
        {
            // Other data is decoded at the run's size and channels: grey 28 px clothes become 32 px colour images.
            var (code, o, e) = CliRunner.Run("reconstruct", "--run", run, "--data", "fashion-mnist", "--out", dir["f.png"], "--n", "8");
            Assert.True(code == 0, o + e);
        }

        var (resumed, rOut, rErr) = CliRunner.Run("train", "--resume", run, "--epochs", "3");
        Assert.True(resumed == 0, rOut + rErr);
        Assert.True(File.Exists(Path.Combine(run, "images/epoch_003_samples.png")));
        var epochs = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "epoch").Select(r => r.GetProperty("epoch").GetInt32()).ToList();
        Assert.Equal([1, 2, 3], epochs);
    }

    [Fact]
    public void An_existing_run_is_not_overwritten()
    {
        using var dir = new TempDir();
        string[] args = ["train", "--data", "synthetic:64", "--widths", "4,8", "--latent", "4", "--epochs", "1", "--batch-size", "32",
                         "--name", "same", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"]];
        Assert.Equal(0, CliRunner.Run(args).Exit);
        var (exit, _, error) = CliRunner.Run(args);
        Assert.Equal(2, exit);
        Assert.Contains("--resume", error);
    }
}
