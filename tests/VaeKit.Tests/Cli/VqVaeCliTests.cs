using System.Text.Json;
using SkiaSharp;

namespace VaeKit.Tests.Cli;

/// <summary><c>--model vq-vae</c> through every command a user runs on a run directory.</summary>
[Trait("Category", "Slow")]
public class VqVaeCliTests
{
    private static string[] Train(string name, string runs, string cache, int epochs) =>
    [
        "train", "--model", "vq-vae", "--data", "synthetic:256", "--preset", "tiny", "--widths", "8,16", "--latent", "8",
        "--model-option", "codebook=32", "--model-option", "dead_after=3", "--epochs", epochs.ToString(), "--batch-size", "64",
        "--schedule", "constant", "--warmup", "2", "--log-every", "1", "--threads", "1",
        "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    private static List<JsonElement> Rows(string run, string type) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == type).ToList();

    [Fact]
    public void Train_resume_eval_sample_reconstruct_interpolate_and_traverse()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        var (exit, output, error) = CliRunner.Run(Train("straight", runs, cache, epochs: 2));
        Assert.True(exit == 0, output + error);
        string straight = Path.Combine(runs, "straight");

        var trainRows = Rows(straight, "train");
        Assert.All(trainRows, r =>
        {
            foreach (var key in new[] { "reconstruction", "commitment", "perplexity", "mse" }) Assert.True(r.TryGetProperty(key, out _), key);
        });
        Assert.All(trainRows, r => Assert.InRange(r.GetProperty("perplexity").GetDouble(), 1, 32));
        Assert.True(Rows(straight, "epoch")[^1].TryGetProperty("val_commitment", out _));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(straight, "config.json"))))
        {
            var options = config.RootElement.GetProperty("model").GetProperty("options");
            Assert.Equal(32, options.GetProperty("codebook").GetInt32());
            Assert.Equal(4, options.GetProperty("code_dim").GetInt32());   // filled in from the latent and recorded
        }

        // One epoch, then a resume to two: the same steps, losses, epoch means and sample grid as never stopping.
        Assert.Equal(0, CliRunner.Run(Train("split", runs, cache, epochs: 1)).Exit);
        string split = Path.Combine(runs, "split");
        var (resumed, rOut, rErr) = CliRunner.Run("train", "--resume", split, "--epochs", "2");
        Assert.True(resumed == 0, rOut + rErr);
        static string Key(JsonElement r) => $"{r.GetProperty("step")} {r.GetProperty("loss")} {r.GetProperty("commitment")} {r.GetProperty("perplexity")}";
        Assert.Equal(trainRows.Select(Key), Rows(split, "train").Select(Key));
        static string EpochKey(JsonElement r) => $"{r.GetProperty("epoch")} {r.GetProperty("train_loss")} {r.GetProperty("val_loss")} {r.GetProperty("val_perplexity")}";
        Assert.Equal(Rows(straight, "epoch").Select(EpochKey), Rows(split, "epoch").Select(EpochKey));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "images/epoch_002_samples.png")),
                     File.ReadAllBytes(Path.Combine(split, "images/epoch_002_samples.png")));

        // eval reports code usage in place of KL.
        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", straight, "--json");
        Assert.True(evalExit == 0, evalOut + evalErr);
        using (var report = JsonDocument.Parse(evalOut))
        {
            var root = report.RootElement;
            Assert.False(root.TryGetProperty("kl", out _));
            var statistics = root.GetProperty("code_statistics").EnumerateArray()
                .ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("value").GetDouble());
            Assert.InRange(statistics["code_perplexity"], 1, 32);
            Assert.Equal(32, statistics["codes_used"] + statistics["dead_codes"]);
            Assert.True(root.GetProperty("terms").TryGetProperty("commitment", out _));
        }
        var (_, table, _) = CliRunner.Run("eval", "--run", straight);
        Assert.Contains("dead codes", table);
        Assert.Contains("code perplexity", table);

        foreach (var command in new[] { "sample", "reconstruct", "interpolate", "traverse" })
        {
            string png = dir[command + ".png"];
            var (code, o, e) = CliRunner.Run(command, "--run", straight, "--out", png, "--scale", "1");
            Assert.True(code == 0, command + ": " + o + e);
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
        }
    }

    [Fact]
    public void A_code_size_that_does_not_divide_the_latent_is_bad_input()
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("train", "--model", "vq-vae", "--latent", "8", "--model-option", "code_dim=3",
                                             "--runs-dir", dir["runs"], "--cache-dir", dir["cache"]);
        Assert.Equal(2, exit);
        Assert.Contains("code_dim", error);
        Assert.DoesNotContain("   at ", error);
    }
}
