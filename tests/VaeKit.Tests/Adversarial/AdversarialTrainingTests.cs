using System.Text.Json;
using TorchSharp;
using VaeKit.Adversarial;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Adversarial;

/// <summary>
/// The several-optimizer engine with a discriminator: exact resume of every module, the start step, the adaptive weight
/// and the GAN losses checked against their definitions, the sizing of the PatchGAN, and the single-module path left
/// exactly as it was when the term is off.
/// </summary>
public class AdversarialTrainingTests
{
    private static readonly ModelConfig Small = new() { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 };

    private static readonly TrainConfig Train = new()
    {
        BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 2, Seed = 5,
        AdversarialWeight = 0.5, AdversarialStart = 2, FeatureMatchingWeight = 0.1, DiscriminatorWidth = 8,
    };

    private static DecodedImages RandomImages(int count, int seed = 11)
    {
        var generator = new Generator((ulong)seed);
        return new DecodedImages(randint(0, 256, [count, 16, 16, 3], generator: generator).to_type(ScalarType.Byte));
    }

    private static VaeModel Build(string kind)
    {
        var config = Small with { Kind = kind };
        if (kind == ModelKinds.VqVae) config = config.WithOption("codebook", "16").WithOption("code_dim", "2");
        config = ModelFactory.Validate(config);
        return ModelFactory.Create(config);
    }

    /// <summary>Runs steps [from, to) of a run with 4 steps per epoch, returning every number of every step.</summary>
    private static List<IReadOnlyDictionary<string, double>> Steps(Trainer trainer, DecodedImages images, int from, int to)
    {
        var steps = new List<IReadOnlyDictionary<string, double>>();
        for (int step = from; step < to; step++)
        {
            using var plan = new EpochPlan(images, trainer.Config.BatchSize, trainer.Config.Seed, epoch: step / 4, flip: true);
            using var scope = NewDisposeScope();
            steps.Add(trainer.BatchUpdate(plan.Batch(step % 4, CPU)).Values);
        }
        return steps;
    }

    private static float[] Weights(nn.Module module) =>
        module.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [Theory]
    [InlineData(ModelKinds.Ae)]
    [InlineData(ModelKinds.Vae)]
    [InlineData(ModelKinds.SigmaVae)]
    [InlineData(ModelKinds.VqVae)]
    public void Resuming_reproduces_every_number_and_the_discriminator_exactly(string kind)
    {
        using var images = RandomImages(64);
        using var dir = new TempDir();

        manual_seed(1);
        using var straightModel = Build(kind);
        using var straight = new Trainer(straightModel, Train, totalSteps: 10);
        var expected = Steps(straight, images, 0, 10);

        manual_seed(1);
        using var firstModel = Build(kind);
        using var first = new Trainer(firstModel, Train, totalSteps: 10);
        var actual = Steps(first, images, 0, 6);
        var run = new RunConfig { Name = "t", Model = firstModel.Config, Train = Train, Data = new DataConfig() };
        Checkpoint.Save(dir["last.ckpt"], new CheckpointHeader { Config = run, Step = first.Step }, first);
        _ = Steps(first, images, 6, 8);      // the original goes on: the checkpoint must not care
        manual_seed(99);                     // and the global generator (which initialises a discriminator) is elsewhere

        var (_, resumed) = Checkpoint.Load(dir["last.ckpt"], Train, totalSteps: 10, CPU);
        using (resumed.Model)
        using (resumed)
        {
            actual.AddRange(Steps(resumed, images, 6, 10));
            Assert.Equal(Weights(straight.Discriminator!), Weights(resumed.Discriminator!));
            Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
        }

        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.Equal(expected[i].OrderBy(kv => kv.Key), actual[i].OrderBy(kv => kv.Key));   // bit-exact, every number
        Assert.Contains(MetricNames.DiscriminatorLoss, expected[^1].Keys);
        Assert.True(expected[^1][MetricNames.DiscriminatorLoss] > 0);
    }

    [Fact]
    public void With_the_term_off_there_is_no_discriminator_and_checkpoints_keep_the_single_module_format()
    {
        using var images = RandomImages(64);
        using var dir = new TempDir();
        manual_seed(1);
        using var model = Build(ModelKinds.Vae);
        var plain = new TrainConfig { BatchSize = 16, Seed = 5 };
        using var trainer = new Trainer(model, plain, totalSteps: 4);
        Assert.Null(trainer.Discriminator);
        Assert.Single(trainer.Modules);
        var numbers = Steps(trainer, images, 0, 1)[0];
        Assert.DoesNotContain(MetricNames.DiscriminatorLoss, numbers.Keys);
        Assert.DoesNotContain(MetricNames.GeneratorLoss, numbers.Keys);

        var run = new RunConfig { Name = "t", Model = model.Config, Train = plain, Data = new DataConfig() };
        Checkpoint.Save(dir["plain.ckpt"], new CheckpointHeader { Config = run, Step = trainer.Step }, trainer);
        Assert.Equal(2, FormatOf(dir["plain.ckpt"]));

        manual_seed(1);
        using var adversarialModel = Build(ModelKinds.Vae);
        using var adversarial = new Trainer(adversarialModel, Train, totalSteps: 4);
        Assert.Equal(2, adversarial.Modules.Count);
        Steps(adversarial, images, 0, 3);
        Checkpoint.Save(dir["gan.ckpt"], new CheckpointHeader { Config = run with { Train = Train }, Step = adversarial.Step }, adversarial);
        Assert.Equal(3, FormatOf(dir["gan.ckpt"]));

        // Sampling, evaluation and export read the autoencoder alone, as from any checkpoint.
        var (_, loaded) = Checkpoint.LoadModel(dir["gan.ckpt"]);
        using (loaded)
        {
            loaded.eval();
            adversarialModel.eval();
            using var x = rand(4, 3, 16, 16);
            using var a = loaded.call(x).Reconstruction;
            using var b = adversarialModel.call(x).Reconstruction;
            Assert.Equal(0, (a - b).abs().max().item<float>());
            Assert.DoesNotContain(loaded.named_parameters(), p => p.name.StartsWith("layers.", StringComparison.Ordinal));
        }
    }

    private static int FormatOf(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        reader.ReadBytes("VAEKIT-CKPT".Length);
        return reader.ReadInt32();
    }

    [Fact]
    public void The_discriminator_is_neither_run_nor_trained_before_its_start_step()
    {
        using var images = RandomImages(64);
        manual_seed(1);
        using var model = Build(ModelKinds.Vae);
        var config = Train with { AdversarialStart = 3 };
        using var trainer = new Trainer(model, config, totalSteps: 6);
        var initial = Weights(trainer.Discriminator!);

        var early = Steps(trainer, images, 0, 3);
        Assert.Equal(initial, Weights(trainer.Discriminator!));
        foreach (var numbers in early)
            foreach (var name in new[] { MetricNames.GeneratorLoss, MetricNames.AdaptiveWeight, MetricNames.FeatureMatching,
                                         MetricNames.DiscriminatorLoss, MetricNames.LogitsReal, MetricNames.LogitsFake })
                Assert.Equal(0, numbers[name]);

        var late = Steps(trainer, images, 3, 4)[0];
        Assert.NotEqual(initial, Weights(trainer.Discriminator!));
        Assert.True(late[MetricNames.DiscriminatorLoss] > 0);
        Assert.True(late[MetricNames.AdaptiveWeight] > 0);
        Assert.True(late[MetricNames.FeatureMatching] > 0);
    }

    [Theory]
    [InlineData(AdversarialLoss.Hinge)]
    [InlineData(AdversarialLoss.NonSaturating)]
    public void The_adaptive_weight_and_both_gan_losses_follow_their_definitions(AdversarialLoss kind)
    {
        manual_seed(4);
        using var model = Build(ModelKinds.Vae);
        var config = Train with { AdversarialStart = 0, FeatureMatchingWeight = 0, AdversarialLoss = kind };
        using var critics = ReconstructionCritics.Create(config, model.Config, CPU, Precision.Fp32, channelsLast: false)!;
        var discriminator = (PatchDiscriminator)critics.Discriminator!.Module;
        using var scope = NewDisposeScope();
        var x = rand(8, 3, 16, 16);
        model.train();
        var output = model.call(x);
        var objective = model.Objective(output, x, new LossContext(1.0));
        var last = model.named_parameters().First(p => p.name == model.OutputWeightName).parameter;
        Assert.Equal("decoder.conv_out.weight", model.OutputWeightName);

        var (extra, terms) = critics.Generator(x, output.Reconstruction, objective.Loss, last, step: 0);
        double adaptive = terms.Single(t => t.Name == MetricNames.AdaptiveWeight).Value.item<float>();
        double generator = terms.Single(t => t.Name == MetricNames.GeneratorLoss).Value.item<float>();

        // Independently: D in training mode gives the same logits for the same batch (batch statistics).
        var fake = discriminator.call(output.Reconstruction);
        var g = kind == AdversarialLoss.Hinge ? -fake.mean() : nn.functional.softplus(-fake).mean();
        Assert.Equal(g.item<float>(), generator, 5);
        var gradReconstruction = autograd.grad([objective.Loss], [last], retain_graph: true)[0];
        var gradGenerator = autograd.grad([g], [last], retain_graph: true)[0];
        double expected = 0.5 * gradReconstruction.norm().item<float>() / (gradGenerator.norm().item<float>() + 1e-4);
        Assert.Equal(expected, adaptive, expected * 1e-4);
        Assert.Equal(adaptive * generator, extra.item<float>(), Math.Abs(adaptive * generator) * 1e-4);

        var reported = critics.TrainDiscriminator(x, output.Reconstruction, step: 0);
        double dLoss = reported.Single(t => t.Name == MetricNames.DiscriminatorLoss).Value.item<float>();
        using (no_grad())
        {
            var real = discriminator.call(x);
            var fakeDetached = discriminator.call(output.Reconstruction.detach());
            var expectedD = kind == AdversarialLoss.Hinge
                ? 0.5 * (nn.functional.relu(1 - real).mean() + nn.functional.relu(1 + fakeDetached).mean())
                : 0.5 * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fakeDetached).mean());
            Assert.Equal(expectedD.item<float>(), dLoss, 5);
            Assert.Equal(real.mean().item<float>(), reported.Single(t => t.Name == MetricNames.LogitsReal).Value.item<float>(), 5);
        }
    }

    [Theory]
    [InlineData(32, null, 3, 2)]
    [InlineData(28, null, 2, 5)]
    [InlineData(64, null, 3, 6)]
    [InlineData(16, 2, 2, 2)]
    public void The_patch_discriminator_is_sized_to_the_image(int size, int? layers, int expectedLayers, int patches)
    {
        var spec = DiscriminatorSpec.For(new TrainConfig { DiscriminatorLayers = layers, DiscriminatorWidth = 4 }, 3, size);
        Assert.Equal(expectedLayers, spec.Layers);
        Assert.Equal(patches, spec.PatchSide);
        using var d = new PatchDiscriminator(spec);
        using var x = rand(2, 3, size, size);
        using var logits = d.call(x);
        Assert.Equal(new long[] { 2, 1, patches, patches }, logits.shape);
        Assert.Equal(expectedLayers + 1, d.Features(x).Features.Count);
    }

    [Fact]
    public void Too_many_discriminator_layers_for_the_image_are_refused_with_the_most_that_fit()
    {
        var e = Assert.Throws<BadInputException>(() => DiscriminatorSpec.For(new TrainConfig { DiscriminatorLayers = 5 }, 3, 32));
        Assert.Contains("at most 3", e.Message);
        Assert.Contains(Settings.Train.DiscriminatorLayers.Path, e.Message);
    }

    [Fact]
    public void A_non_finite_discriminator_number_stops_the_run_and_names_it()
    {
        using var values = tensor(new float[] { 10, 1, float.NaN, 3 });
        using var step = new PendingStep(7, 1e-3, 1, [MetricNames.GeneratorLoss, MetricNames.DiscriminatorLoss], values.clone());
        var e = Assert.Throws<DivergedException>(() => StepReadback.Resolve([step], Train));
        Assert.Contains("step 7", e.Message);
        Assert.Contains("d_loss is NaN", e.Message);
        Assert.Contains(Settings.Train.DiscriminatorLearningRate.Path, e.Message);
    }

    [Fact]
    public void Bf16_trains_the_discriminator_through_its_own_twin()
    {
        using var images = RandomImages(64);
        manual_seed(1);
        using var model = Build(ModelKinds.Vae);
        using var trainer = new Trainer(model, Train with { AdversarialStart = 0 }, totalSteps: 3, Precision.Bf16);
        Assert.NotNull(trainer.Modules[1].Twin);
        var initial = Weights(trainer.Discriminator!);
        var steps = Steps(trainer, images, 0, 3);
        Assert.All(steps.SelectMany(s => s.Values), v => Assert.True(double.IsFinite(v)));
        Assert.NotEqual(initial, Weights(trainer.Discriminator!));
    }

    [Theory]
    [InlineData(null)]   // the CPU default: every step read back before it is applied
    [InlineData(3)]      // the GPU way: steps queued and read back in windows
    public void An_interrupted_adversarial_run_resumes_to_the_same_run_as_never_stopping(int? readbackEvery)
    {
        using var dir = new TempDir();
        RunConfig Run(string name) => new()
        {
            Name = name,
            Model = new ModelConfig { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 },
            Train = new TrainConfig
            {
                Epochs = 2, BatchSize = 32, LearningRate = 5e-3, WarmupSteps = 3, LogEvery = 1, Seed = 9,
                AdversarialWeight = 0.5, AdversarialStart = 3, FeatureMatchingWeight = 0.1, DiscriminatorWidth = 8,
            },
            Data = new DataConfig { Source = "synthetic:200", Flip = true, CacheDirectory = dir["cache"] },
            Runtime = new RuntimeConfig { Threads = 2, ReadbackEvery = readbackEvery },
        };
        var straight = TrainingRun.Train(Run("straight"), dir["runs"], NullCallback.Instance, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, straight.Outcome);

        using var cancel = new CancellationTokenSource();
        var stopped = TrainingRun.Train(Run("stopped"), dir["runs"], new CancelAt(8, cancel), cancel.Token);
        Assert.Equal(RunOutcome.Interrupted, stopped.Outcome);
        Assert.Equal(8, stopped.Step);   // step 8 ends a read-back window too (5-step epochs: flushes at 3, 5, 8, 10)
        var resumed = TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory }, NullCallback.Instance, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, resumed.Outcome);

        Assert.Equal(Rows(straight.Directory), Rows(resumed.Directory));
        Assert.Contains(Rows(straight.Directory), r => r.Contains("\"d_loss\":") && !r.Contains("\"d_loss\":0,"));
    }

    /// <summary>Cancels (as Ctrl-C does) once a given step has completed.</summary>
    private sealed class CancelAt(long step, CancellationTokenSource cancel) : IRunCallback
    {
        public void StepCompleted(StepReport report)
        {
            if (report.Metrics.Step == step) cancel.Cancel();
        }
    }

    /// <summary>Train and epoch rows of metrics.jsonl without their clocks.</summary>
    private static List<string> Rows(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() is "train" or "epoch")
            .Select(r => string.Join(",", r.EnumerateObject()
                .Where(p => p.Name is not ("time" or "elapsed" or "seconds" or "img_per_sec" or "wall" or "timestamp" or "epoch_seconds"))
                .Select(p => $"\"{p.Name}\":{p.Value.GetRawText()}")))
            .ToList();
}
