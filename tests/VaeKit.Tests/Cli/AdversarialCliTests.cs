using System.Text.Json;
using VaeKit.Config;
using VaeKit.Export;
using VaeKit.Sweeps;

namespace VaeKit.Tests.Cli;

/// <summary>
/// A VQ-VAE trained with the adversarial and feature-matching terms (a small VQGAN) through the whole tool: the GAN's
/// numbers reach the console and metrics.jsonl, and eval, sample, export and resume work on the run as on any other;
/// the exported safetensors hold the autoencoder alone. The new settings are sweep axes.
/// </summary>
[Trait("Category", "Slow")]
public class AdversarialCliTests
{
    private static string[] Train(string name, string runs, string cache, int epochs, int start = 4) =>
    [
        "train", "--model", "vq-vae", "--model-option", "code_dim=4", "--model-option", "codebook=32", "--data", "synthetic:160",
        "--preset", "tiny", "--image-size", "16", "--latent", "8", "--batch-size", "16", "--epochs", epochs.ToString(),
        "--adversarial-weight", "0.5", "--adversarial-start", start.ToString(), "--feature-matching-weight", "0.05", "--disc-width", "8",
        "--log-every", "1", "--threads", "1", "--seed", "5", "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    [Fact]
    public void A_vqgan_trains_resumes_exactly_and_evaluates_samples_and_exports_like_any_run()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        var (exit, output, error) = CliRunner.Run(Train("straight", runs, cache, epochs: 2));
        Assert.True(exit == 0, output + error);
        Assert.Contains("d_loss", output);                       // the console's epoch line carries the GAN's numbers
        Assert.Contains("adaptive_weight", output);
        (exit, output, error) = CliRunner.Run(Train("stopped", runs, cache, epochs: 1));
        Assert.True(exit == 0, output + error);
        (exit, output, error) = CliRunner.Run("train", "--resume", Path.Combine(runs, "stopped"), "--epochs", "2");
        Assert.True(exit == 0, output + error);

        string straight = Path.Combine(runs, "straight");
        Assert.Equal(TrainNumbers(straight), TrainNumbers(Path.Combine(runs, "stopped")));   // discriminator included: bit-exact
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(straight, "config.json"))).RootElement.GetProperty("train");
        Assert.Equal(0.5, config.GetProperty("adversarial_weight").GetDouble());
        Assert.Equal("hinge", config.GetProperty("adversarial_loss").GetString());

        (exit, output, error) = CliRunner.Run("eval", "--run", straight, "--samples", "2", "--device", "cpu", "--fd-images", "64");
        Assert.True(exit == 0, output + error);
        (exit, output, error) = CliRunner.Run("sample", "--run", straight, "--n", "4", "--out", dir["samples.png"]);
        Assert.True(exit == 0, output + error);
        Assert.True(File.Exists(dir["samples.png"]));
        (exit, output, error) = CliRunner.Run("export", "--run", straight, "--out", dir["model.safetensors"]);
        Assert.True(exit == 0, output + error);
        var names = SafeTensors.ReadAll(dir["model.safetensors"]).Keys.ToList();
        Assert.Contains(names, n => n.StartsWith("decoder.", StringComparison.Ordinal));
        Assert.DoesNotContain(names, n => n.StartsWith("layers.", StringComparison.Ordinal) || n.StartsWith("output.", StringComparison.Ordinal));
    }

    [Fact]
    public void Best_ckpt_is_an_epoch_that_trained_with_the_discriminator()
    {
        using var dir = new TempDir();
        string runs = dir["runs"];
        // Epoch 1 ends before the discriminator starts, epoch 2 after: whatever their validation losses, the plain
        // epoch-1 weights do not stay best.ckpt, so every command that reads "best" sees the adversarial decoder.
        var (exit, output, error) = CliRunner.Run(Train("late", runs, dir["cache"], epochs: 2, start: 12));
        Assert.True(exit == 0, output + error);
        string checkpoints = Path.Combine(runs, "late", "checkpoints");
        long last = VaeKit.Training.Checkpoint.ReadHeader(Path.Combine(checkpoints, "last.ckpt")).Step;
        long best = VaeKit.Training.Checkpoint.ReadHeader(Path.Combine(checkpoints, "best.ckpt")).Step;
        Assert.True(last >= 12 && last < 24, $"epoch 2 ends at step {last}, epoch 1 before step 12");
        Assert.Equal(last, best);
    }

    [Fact]
    public void The_adversarial_settings_are_sweep_axes()
    {
        var run = new RunConfig { Name = "s", Model = new ModelConfig(), Train = new TrainConfig(), Data = new DataConfig() };
        var axes = new[] { "adversarial_weight=0,0.50", "adversarial_loss=hinge,non-saturating", "disc_norm=group", "feature_matching_weight=1", "disc_lr=1e-4" }
            .Select(a => SweepGrid.ParseAxis(a)).ToList();
        Assert.Equal(["0", "0.5"], axes[0].Values);
        var applied = SweepGrid.Apply(run, axes.Select(a => KeyValuePair.Create(a.Key, a.Values[^1])));
        Assert.Equal(0.5, applied.Train.AdversarialWeight);
        Assert.Equal(AdversarialLoss.NonSaturating, applied.Train.AdversarialLoss);
        Assert.Equal(DiscriminatorNorm.Group, applied.Train.DiscriminatorNorm);
        Assert.Equal(1, applied.Train.FeatureMatchingWeight);
        Assert.Equal(1e-4, applied.Train.DiscriminatorLearningRate);
        var bad = Assert.Throws<BadInputException>(() => SweepGrid.ParseAxis("adversarial_loss=wasserstein"));
        Assert.Contains("hinge or non-saturating", bad.Message);
    }

    /// <summary>Every train row's numbers except wall-clock ones, as text.</summary>
    private static List<string> TrainNumbers(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "train")
            .Select(r => string.Join(' ', r.EnumerateObject().Where(p => p.Name is not ("time" or "img_per_sec")).Select(p => $"{p.Name}={p.Value}")))
            .ToList();
}
