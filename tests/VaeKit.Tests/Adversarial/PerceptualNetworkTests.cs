using VaeKit.Adversarial;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Evaluation;
using VaeKit.Models;
using VaeKit.Tests.Cli;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Adversarial;

/// <summary>
/// <c>--perceptual-net</c>: a TorchScript module scripted by Debian's python3-torch from tests/fixtures/perceptual_net.py
/// gives the same distances in VaeKit as in PyTorch and trains a decoder; modules that break the contract, files that
/// are not TorchScript and the FD feature networks are refused with a message.
/// </summary>
public class PerceptualNetworkTests
{
    private const int Size = 16;

    /// <summary>Scripts the stand-in networks into <paramref name="dir"/>.</summary>
    private static void Script(string dir) => Requirements.RunFixture("perceptual_net.py", dir, "3", $"{Size}");

    [FactRequiring(Package.PythonTorch)]
    public void A_scripted_network_gives_pytorchs_distances_and_passes_gradients()
    {
        using var dir = new TempDir();
        Script(dir.Path);
        using var network = PerceptualNetwork.Load(dir["good.pt"], CPU, 3, Size);
        using var batch = jit.load(dir["batch.pt"]);
        var buffers = batch.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        using var scope = NewDisposeScope();
        var y = buffers["y"].clone().requires_grad_(true);
        var distance = network.Distance(buffers["x"], y);
        Assert.Equal(new long[] { 4 }, distance.shape);
        Assert.True((distance - buffers["d"]).abs().max().item<float>() < 1e-6, "VaeKit and PyTorch disagree on the distances");
        distance.sum().backward();
        Assert.True(y.grad!.abs().sum().item<float>() > 0);
        Assert.Equal(64, network.ContentHash.Length);
    }

    [FactRequiring(Package.PythonTorch)]
    public void A_network_that_breaks_the_contract_or_is_not_torchscript_is_refused()
    {
        using var dir = new TempDir();
        Script(dir.Path);
        var perPixel = Assert.Throws<BadInputException>(() => PerceptualNetwork.Load(dir["per_pixel.pt"], CPU, 3, Size));
        Assert.Contains("one distance per image", perPixel.Message);

        File.WriteAllText(dir["notes.txt"], "not a network");
        var text = Assert.Throws<BadInputException>(() => PerceptualNetwork.Load(dir["notes.txt"], CPU, 3, Size));
        Assert.Contains("not a TorchScript module", text.Message);
    }

    [Fact]
    public void The_fd_feature_networks_are_refused_as_a_training_signal()
    {
        using var dir = new TempDir();
        using (var shipped = FeatureNetwork.Load("faces")) shipped.Save(dir["faces.safetensors"]);
        var e = Assert.Throws<BadInputException>(() => PerceptualNetwork.Load(dir["faces.safetensors"], CPU, 3, Size));
        Assert.Contains("Fréchet-distance feature network", e.Message);

        var (exit, _, error) = CliRunner.Run("train", "--perceptual-net", "faces", "--perceptual-weight", "1", "--data", "synthetic:64", "--runs-dir", dir["runs"]);
        Assert.Equal(2, exit);
        Assert.Contains("--perceptual-net faces names a shipped Fréchet-distance feature network", error);
        Assert.False(Directory.Exists(dir["runs"]) && Directory.EnumerateFileSystemEntries(dir["runs"]).Any(), "nothing is written for bad input");

        (exit, _, error) = CliRunner.Run("train", "--perceptual-weight", "1", "--data", "synthetic:64", "--runs-dir", dir["runs"]);
        Assert.Equal(2, exit);
        Assert.Contains("--perceptual-weight needs a network: give --perceptual-net", error);
    }

    [FactRequiring(Package.PythonTorch)]
    public void The_perceptual_term_trains_the_decoder_and_is_reported()
    {
        using var dir = new TempDir();
        Script(dir.Path);
        var generator = new TorchSharp.torch.Generator(11);
        using var images = new DecodedImages(randint(0, 256, [64, Size, Size, 3], generator: generator).to_type(ScalarType.Byte));
        var model = new ModelConfig { ImageSize = Size, Widths = [4, 8], Blocks = 1, Latent = 4 };
        var plain = new TrainConfig { BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 0, Seed = 5 };

        List<IReadOnlyDictionary<string, double>> Run(TrainConfig config)
        {
            manual_seed(1);
            using var vae = ModelFactory.Create(model);
            using var trainer = new Trainer(vae, config, totalSteps: 3);
            Assert.Null(trainer.Discriminator);      // a perceptual term alone needs no second optimizer
            var steps = new List<IReadOnlyDictionary<string, double>>();
            for (int step = 0; step < 3; step++)
            {
                using var plan = new EpochPlan(images, 16, 5, 0, flip: false);
                using var scope = NewDisposeScope();
                steps.Add(trainer.BatchUpdate(plan.Batch(step, CPU)).Values);
            }
            return steps;
        }

        var without = Run(plain);
        var with = Run(plain with { PerceptualNet = dir["good.pt"], PerceptualWeight = 100 });
        Assert.DoesNotContain(MetricNames.Perceptual, without[0].Keys);
        Assert.All(with, s => Assert.True(s[MetricNames.Perceptual] > 0));
        Assert.Equal(without[0][MetricNames.Loss], with[0][MetricNames.Loss]);        // the same start, the family's loss reported
        Assert.NotEqual(without[2][MetricNames.Loss], with[2][MetricNames.Loss]);      // then the term moved the weights
    }
}
