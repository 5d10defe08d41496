using System.Text.Json;
using System.Text.Json.Nodes;
using SkiaSharp;
using VaeKit.Config;
using VaeKit.Models;

namespace VaeKit.Tests.Cli;

/// <summary><c>--model vq-vae --model-option layout=grid</c> through train, resume, eval, sample and info.</summary>
[Trait("Category", "Slow")]
public class VqGridCliTests
{
    // 32 px, four stages: a 4 × 4 code grid; latent 32 → code_dim 2.
    private static string[] Train(string name, string runs, string cache, int epochs) =>
    [
        "train", "--model", "vq-vae", "--model-option", "layout=grid", "--data", "synthetic:256", "--preset", "tiny",
        "--widths", "8,16,16,16", "--latent", "32", "--model-option", "codebook=32", "--model-option", "dead_after=3",
        "--epochs", epochs.ToString(), "--batch-size", "64", "--schedule", "constant", "--warmup", "2", "--log-every", "1",
        "--threads", "1", "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    private static List<JsonElement> Rows(string run, string type) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == type).ToList();

    [Fact]
    public void A_grid_vq_vae_trains_resumes_exactly_evaluates_and_samples()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        var (exit, output, error) = CliRunner.Run(Train("straight", runs, cache, epochs: 2));
        Assert.True(exit == 0, output + error);
        string straight = Path.Combine(runs, "straight");
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(straight, "config.json"))))
        {
            var options = config.RootElement.GetProperty("model").GetProperty("options");
            Assert.Equal("grid", options.GetProperty("layout").GetString());
            Assert.Equal(2, options.GetProperty("code_dim").GetInt32());   // 32 / (4·4), recorded
        }
        var trainRows = Rows(straight, "train");
        Assert.All(trainRows, r => Assert.InRange(r.GetProperty("perplexity").GetDouble(), 1, 32));

        // One epoch, then a resume to two: the same steps, losses and sample grid as never stopping.
        Assert.Equal(0, CliRunner.Run(Train("split", runs, cache, epochs: 1)).Exit);
        string split = Path.Combine(runs, "split");
        var (resumed, rOut, rErr) = CliRunner.Run("train", "--resume", split, "--epochs", "2");
        Assert.True(resumed == 0, rOut + rErr);
        static string Key(JsonElement r) => $"{r.GetProperty("step")} {r.GetProperty("loss")} {r.GetProperty("commitment")} {r.GetProperty("perplexity")}";
        Assert.Equal(trainRows.Select(Key), Rows(split, "train").Select(Key));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "images/epoch_002_samples.png")),
                     File.ReadAllBytes(Path.Combine(split, "images/epoch_002_samples.png")));

        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", straight, "--json");
        Assert.True(evalExit == 0, evalOut + evalErr);
        using (var report = JsonDocument.Parse(evalOut))
        {
            var statistics = report.RootElement.GetProperty("code_statistics").EnumerateArray()
                .ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("value").GetDouble());
            Assert.InRange(statistics["code_perplexity"], 1, 32);
            Assert.Equal(32, statistics["codes_used"] + statistics["dead_codes"]);
        }

        foreach (var command in new[] { "sample", "reconstruct", "interpolate" })
        {
            string png = dir[command + ".png"];
            var (code, o, e) = CliRunner.Run(command, "--run", straight, "--out", png, "--scale", "1");
            Assert.True(code == 0, command + ": " + o + e);
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
        }
    }

    [Fact]
    public void Info_counts_the_grid_models_parameters_as_the_library_builds_it()
    {
        var (exit, output, error) = CliRunner.Run("info", "--model", "vq-vae", "--model-option", "layout=grid", "--json");
        Assert.True(exit == 0, output + error);
        using var json = JsonDocument.Parse(output);
        var config = (Presets.Tiny with { Kind = ModelKinds.VqVae, Options = new JsonObject { ["layout"] = "grid" } }).Validate();
        using var model = ModelFactory.Create(config);
        Assert.Equal(model.parameters().Sum(p => p.numel()), json.RootElement.GetProperty("params").GetInt64());
        Assert.Contains(json.RootElement.GetProperty("layers").EnumerateArray(), l => l.ToString().Contains("project_latent"));
    }

    [Theory]
    [InlineData("layout=banana", "flat, grid")]
    [InlineData("layout=grid", "multiple of 16")]
    [InlineData("layout=grid", "use --latent 32 or 48.")]   // the library's model.latent=32, in this command's flags
    public void A_bad_layout_or_latent_is_bad_input(string option, string expected)
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("train", "--model", "vq-vae", "--latent", "40", "--model-option", option,
                                             "--runs-dir", dir["runs"], "--cache-dir", dir["cache"]);
        Assert.Equal(2, exit);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error);
    }
}
