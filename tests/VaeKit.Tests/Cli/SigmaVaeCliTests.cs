using System.Text.Json;
using SkiaSharp;

namespace VaeKit.Tests.Cli;

/// <summary><c>--model sigma-vae</c> through the whole tool: train, resume, eval with the model's own σ, sample, reconstruct.</summary>
[Trait("Category", "Slow")]
public class SigmaVaeCliTests
{
    private static string[] Train(string sigma, string name, string runs, string cache, int epochs, int images = 160) =>
    [
        "train", "--model", "sigma-vae", "--model-option", $"sigma={sigma}", "--data", $"synthetic:{images}", "--preset", "tiny",
        "--image-size", "16", "--latent", "8", "--batch-size", "16", "--epochs", epochs.ToString(), "--schedule", "constant",
        "--warmup", "2", "--log-every", "1", "--threads", "1", "--seed", "5", "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    private static List<JsonElement> Rows(string run, string type) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == type).ToList();

    /// <summary>Every train row's numbers except wall-clock ones, as text.</summary>
    private static List<string> TrainNumbers(string run) =>
        Rows(run, "train").Select(r => string.Join(' ', r.EnumerateObject()
            .Where(p => p.Name is not ("time" or "img_per_sec")).Select(p => $"{p.Name}={p.Value}"))).ToList();

    private static JsonElement Eval(string run, params string[] extra)
    {
        var (exit, output, error) = CliRunner.Run(["eval", "--run", run, "--checkpoint", "last", "--samples", "2", "--device", "cpu", .. extra]);
        Assert.True(exit == 0, output + error);
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "eval.json"))).RootElement.Clone();
    }

    [Fact]
    public void Optimal_sigma_trains_resumes_exactly_and_is_evaluated_under_its_own_sigma()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        var (exit, output, error) = CliRunner.Run(Train("optimal", "straight", runs, cache, epochs: 2));
        Assert.True(exit == 0, output + error);
        (exit, output, error) = CliRunner.Run(Train("optimal", "stopped", runs, cache, epochs: 1));
        Assert.True(exit == 0, output + error);
        (exit, output, error) = CliRunner.Run("train", "--resume", Path.Combine(runs, "stopped"), "--epochs", "2");
        Assert.True(exit == 0, output + error);

        string straight = Path.Combine(runs, "straight"), resumed = Path.Combine(runs, "stopped");
        var rows = Rows(straight, "train");
        Assert.All(rows, r => Assert.True(r.GetProperty("sigma").GetDouble() > 0));
        Assert.All(rows, r => Assert.True(r.TryGetProperty("mse", out _)));
        Assert.Equal(TrainNumbers(straight), TrainNumbers(resumed));   // bit-exact: the same losses, σ and gradients

        // eval uses the model's running σ², not --decoder-variance; the resumed run carried it over exactly.
        var a = Eval(straight);
        var b = Eval(resumed);
        var c = Eval(straight, "--decoder-variance", "0.01");
        double variance = a.GetProperty("decoder_variance").GetDouble();
        Assert.NotEqual(0.5, variance);
        Assert.Equal(variance, b.GetProperty("decoder_variance").GetDouble());
        Assert.Equal(variance, c.GetProperty("decoder_variance").GetDouble());
        Assert.Equal(a.GetProperty("nll_nats").GetDouble(), b.GetProperty("nll_nats").GetDouble());
        Assert.Equal(a.GetProperty("elbo_nats").GetDouble(), c.GetProperty("elbo_nats").GetDouble());
        // It is a running mean of the training batches' σ*² = MSE: near the last steps' σ².
        double lastSigma = rows[^1].GetProperty("sigma").GetDouble();
        Assert.InRange(variance, lastSigma * lastSigma / 2, lastSigma * lastSigma * 2);
        Assert.True(a.GetProperty("terms").TryGetProperty("sigma", out _));

        foreach (var command in new[] { "sample", "reconstruct" })
        {
            string png = dir[command + ".png"];
            (exit, output, error) = CliRunner.Run(command, "--run", straight, "--out", png, "--scale", "1", "--checkpoint", "last");
            Assert.True(exit == 0, output + error);
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
        }
    }

    [Fact]
    public void Learned_sigma_is_a_trained_parameter_and_eval_uses_it()
    {
        using var dir = new TempDir();
        string runs = dir["runs"];
        var (exit, output, error) = CliRunner.Run(Train("learned", "learned", runs, dir["cache"], epochs: 1));
        Assert.True(exit == 0, output + error);
        string run = Path.Combine(runs, "learned");
        var sigmas = Rows(run, "train").Select(r => r.GetProperty("sigma").GetDouble()).ToList();
        Assert.True(sigmas[^1] < sigmas[0], string.Join(", ", sigmas));   // the error falls as the model trains, and σ with it

        var report = Eval(run);
        double variance = report.GetProperty("decoder_variance").GetDouble();
        Assert.InRange(Math.Sqrt(variance), sigmas[^1] * 0.9, sigmas[^1] * 1.1);   // the last step's σ after one more update

        var (bad, _, badError) = CliRunner.Run(["train", "--model", "sigma-vae", "--model-option", "sigma=fixed", "--data", "synthetic:64", "--cache-dir", dir["cache"], "--runs-dir", runs]);
        Assert.Equal(2, bad);
        Assert.Contains("--model-option sigma must be optimal or learned", badError);
    }

    [Fact]
    public void Learned_sigma_starts_at_the_batch_optimum_and_follows_it()
    {
        using var dir = new TempDir();
        string runs = dir["runs"];
        // 1,600 images, 5 % held out: 95 steps of 16.
        var (exit, output, error) = CliRunner.Run(Train("learned", "follow", runs, dir["cache"], epochs: 1, images: 1600));
        Assert.True(exit == 0, output + error);
        // σ* of a batch is √(its mean squared error): the σ that maximises that batch's likelihood.
        var ratios = Rows(Path.Combine(runs, "follow"), "train")
            .Select(r => Math.Log(r.GetProperty("sigma").GetDouble() / Math.Sqrt(r.GetProperty("mse").GetDouble()))).ToList();
        Assert.Equal(95, ratios.Count);
        string curve = string.Join(", ", ratios.Select(r => r.ToString("F2")));
        Assert.True(Math.Abs(ratios[0]) < 0.25, "first step: " + curve);                          // not σ = 1
        Assert.True(ratios.Skip(45).Average(Math.Abs) < 0.15, "steps 46-95: " + curve);           // within ~15 % of σ*
    }
}
