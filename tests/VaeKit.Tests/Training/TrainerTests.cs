using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Training;

public class TrainerTests
{
    private static readonly ModelConfig Small = new() { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 };
    private static readonly TrainConfig Train = new() { BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 2, Seed = 5 };

    private static DecodedImages RandomImages(int count, int seed = 11)
    {
        var generator = new Generator((ulong)seed);
        return new DecodedImages(randint(0, 256, [count, 16, 16, 3], generator: generator).to_type(ScalarType.Byte));
    }

    /// <summary>Runs steps [from, to) of a run with 4 steps per epoch, returning the losses.</summary>
    private static List<double> Steps(Trainer trainer, DecodedImages images, int from, int to)
    {
        var losses = new List<double>();
        for (int step = from; step < to; step++)
        {
            using var plan = new EpochPlan(images, Train.BatchSize, Train.Seed, epoch: step / 4, flip: true);
            using var scope = NewDisposeScope();
            losses.Add(trainer.BatchUpdate(plan.Batch(step % 4, CPU)).Loss);
        }
        return losses;
    }

    [Fact]
    public void Resuming_from_a_checkpoint_reproduces_the_uninterrupted_losses_exactly()
    {
        using var images = RandomImages(64);
        using var dir = new TempDir();
        var run = new RunConfig { Name = "t", Model = Small, Train = Train, Data = new DataConfig() };

        manual_seed(1);
        using var straightModel = new AutoEncoder(Small);
        using var straight = new Trainer(straightModel, Train, totalSteps: 10);
        var expected = Steps(straight, images, 0, 10);

        manual_seed(1);
        using var firstModel = new AutoEncoder(Small);
        using var first = new Trainer(firstModel, Train, totalSteps: 10);
        var actual = Steps(first, images, 0, 6);
        Checkpoint.Save(dir["last.ckpt"], new CheckpointHeader { Config = run, Step = first.Step }, first);
        _ = Steps(first, images, 6, 8);      // the original goes on, moving its noise generator: the checkpoint must not care
        manual_seed(99);                     // and the global generator is somewhere else entirely

        var (header, resumed) = Checkpoint.Load(dir["last.ckpt"], Train, totalSteps: 10, CPU);
        using (resumed.Model)
        using (resumed)
        {
            Assert.Equal(6, header.Step);
            Assert.Equal(6, resumed.Step);
            actual.AddRange(Steps(resumed, images, 6, 10));
        }

        Assert.Equal(expected, actual);   // bit-exact on CPU with the same thread count
    }

    [Fact]
    public void A_loaded_checkpoint_gives_identical_outputs()
    {
        using var images = RandomImages(64);
        using var dir = new TempDir();
        manual_seed(2);
        using var model = new AutoEncoder(Small);
        using var trainer = new Trainer(model, Train, totalSteps: 3);
        Steps(trainer, images, 0, 3);                // BatchNorm running stats move away from their initial values
        Checkpoint.Save(dir["c.ckpt"], new CheckpointHeader { Config = new RunConfig { Name = "t", Model = Small, Train = Train, Data = new DataConfig() } }, trainer);

        var (_, loaded) = Checkpoint.LoadModel(dir["c.ckpt"]);
        using (loaded)
        using (var scope = NewDisposeScope())
        {
            model.eval();
            loaded.eval();
            var x = DecodedImages.ToModelInput(images.Pixels, CPU);
            Assert.True(model.call(x).Reconstruction.equal(loaded.call(x).Reconstruction).all().item<bool>());
        }
    }

    [Fact]
    public void A_truncated_checkpoint_is_reported_not_loaded()
    {
        using var dir = new TempDir();
        manual_seed(3);
        using var model = new AutoEncoder(Small);
        using var trainer = new Trainer(model, Train, totalSteps: 1);
        Checkpoint.Save(dir["c.ckpt"], new CheckpointHeader { Config = new RunConfig { Name = "t", Model = Small, Train = Train, Data = new DataConfig() } }, trainer);
        var bytes = File.ReadAllBytes(dir["c.ckpt"]);
        File.WriteAllBytes(dir["c.ckpt"], bytes[..(bytes.Length * 2 / 3)]);

        var e = Assert.Throws<BadInputException>(() => Checkpoint.Load(dir["c.ckpt"], Train, 1, CPU));
        Assert.Contains("c.ckpt", e.Message);
        Assert.Contains("resume.from=best", e.Message);
        Assert.Contains("--resume-from best", VaeKit.Tests.Cli.CliRunner.AsPrintedBy("train", e.Text));

        File.WriteAllBytes(dir["c.ckpt"], [.. "VAEKIT-CKPT"u8, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);   // header length 2^31−1
        Assert.Throws<BadInputException>(() => Checkpoint.ReadHeader(dir["c.ckpt"]));
        File.WriteAllText(dir["c.ckpt"], "not a checkpoint at all");
        Assert.Throws<BadInputException>(() => Checkpoint.ReadHeader(dir["c.ckpt"]));
    }

    [Fact]
    public void A_nan_loss_stops_before_the_optimizer_touches_the_weights()
    {
        manual_seed(4);
        using var model = new AutoEncoder(Small);
        using var trainer = new Trainer(model, Train, totalSteps: 1);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        using var poisoned = full(4, 3, 16, 16, float.NaN);

        var e = Assert.Throws<DivergedException>(() => trainer.BatchUpdate(poisoned));

        Assert.Contains("step 1", e.Message);
        Assert.Contains("train.learning_rate", e.Message);
        Assert.Equal(0, trainer.Step);
        foreach (var (p, b) in model.parameters().Zip(before))
            Assert.True(p.equal(b).all().item<bool>());
    }

    [Fact]
    public void Batch_metrics_use_the_posterior_mean_and_match_a_hand_computation()
    {
        using var images = RandomImages(20);
        manual_seed(6);
        using var model = new AutoEncoder(Small);
        using var trainer = new Trainer(model, Train, totalSteps: 1);
        using var scope = NewDisposeScope();
        var x = DecodedImages.ToModelInput(images.Pixels, CPU);

        var sums = new MetricSums();
        ValidationPass.BatchMetrics(trainer.Model, trainer.Config.KlWeight, trainer.Step, x.narrow(0, 0, 12), sums);
        ValidationPass.BatchMetrics(trainer.Model, trainer.Config.KlWeight, trainer.Step, x.narrow(0, 12, 8), sums);
        var metrics = sums.Result();

        model.eval();
        using var noGrad = no_grad();
        var output = model.call(x);
        double reconstruction = Losses.SquaredErrorPerImage(output.Reconstruction, x).mean().item<float>();
        double kl = ((GaussianPosterior)output.Posterior).Kl().mean().item<float>();
        Assert.Equal(20, metrics.Images);
        Assert.Equal(reconstruction, metrics.Reconstruction, 2);
        Assert.Equal(kl, metrics.Kl, 3);
        Assert.Equal(reconstruction / (3 * 16 * 16), metrics.Mse, 6);
    }

    [Theory]
    [InlineData(0, 1e-2 / 2)]        // warm-up: step 1 of 2
    [InlineData(1, 1e-2)]            // warm-up done
    [InlineData(6, 1e-2 * 0.5)]      // cosine half-way between step 2 and 10
    [InlineData(9, 1e-2 * 0.038060233744356624)]   // the last step taken: ½(1 + cos(7π/8)) of the peak
    public void Learning_rate_warms_up_then_follows_a_cosine(long step, double expected)
    {
        Assert.Equal(expected, LearningRate.At(Train, step, totalSteps: 10), 12);
    }

    [Fact]
    public void Epoch_plans_depend_only_on_seed_and_epoch()
    {
        using var images = RandomImages(40);
        using var a = new EpochPlan(images, 8, seed: 1, epoch: 3, flip: true);
        using var b = new EpochPlan(images, 8, seed: 1, epoch: 3, flip: true);
        using var c = new EpochPlan(images, 8, seed: 1, epoch: 4, flip: true);
        using var scope = NewDisposeScope();
        Assert.Equal(5, a.StepsPerEpoch);
        Assert.True(a.Batch(2, CPU).equal(b.Batch(2, CPU)).all().item<bool>());
        Assert.False(a.Batch(2, CPU).equal(c.Batch(2, CPU)).all().item<bool>());
    }
}
