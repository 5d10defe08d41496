using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Training;

/// <summary>bf16 compute is kept only while it trains as well as fp32: the loss-parity check of the speed issue.</summary>
public class PrecisionTests
{
    private static readonly ModelConfig Tiny = Presets.Tiny with { ImageSize = 32 };
    private static readonly TrainConfig Train = new() { BatchSize = 32, LearningRate = 2e-3, WarmupSteps = 10, Seed = 3 };

    private static DecodedImages Faces(int count)
    {
        var images = DecodedImages.Allocate(count, 32, 3);
        for (int i = 0; i < count; i++)
            SyntheticFaces.Render(seed: 0, index: i, size: 32, images.ImageSpan(i));
        return images;
    }

    private static (List<double> Losses, double Validation) Run(Precision precision, DecodedImages train, DecodedImages validation, int steps)
    {
        manual_seed(1);
        using var model = new AutoEncoder(Tiny);
        using var trainer = new Trainer(model, Train, steps, precision);
        var losses = new List<double>();
        int perEpoch = EpochPlan.Count(train.Count, Train.BatchSize);
        for (int step = 0; step < steps; step++)
        {
            using var plan = new EpochPlan(train, Train.BatchSize, Train.Seed, step / perEpoch, flip: false);
            using var scope = NewDisposeScope();
            losses.Add(trainer.BatchUpdate(plan.Batch(step % perEpoch, CPU)).Loss);
        }
        var sums = new MetricSums();
        using (var scope = NewDisposeScope())
            ValidationPass.BatchMetrics(trainer.Model, trainer.Config.KlWeight, trainer.Step, DecodedImages.ToModelInput(validation.Pixels, CPU), sums);
        return (losses, sums.Result().Loss);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Bf16_training_reaches_the_fp32_loss_within_five_percent_at_equal_steps()
    {
        using var train = Faces(512);
        using var validation = Faces(64);
        const int steps = 80;
        var fp32 = Run(Precision.Fp32, train, validation, steps);
        var bf16 = Run(Precision.Bf16, train, validation, steps);

        Assert.All(bf16.Losses, l => Assert.True(double.IsFinite(l)));
        double first = fp32.Losses[0], fp32Final = fp32.Losses.TakeLast(20).Average(), bf16Final = bf16.Losses.TakeLast(20).Average();
        Assert.True(fp32Final < 0.7 * first, $"fp32 should learn: {first:F1} → {fp32Final:F1}");
        Assert.True(Math.Abs(bf16Final - fp32Final) < 0.05 * fp32Final,
            $"train loss over the last 20 steps: bf16 {bf16Final:F2} vs fp32 {fp32Final:F2}");
        Assert.True(Math.Abs(bf16.Validation - fp32.Validation) < 0.05 * fp32.Validation,
            $"validation loss (fp32 master weights): bf16-trained {bf16.Validation:F2} vs fp32-trained {fp32.Validation:F2}");
    }

    [Fact]
    public void The_channels_last_bf16_layout_computes_the_same_steps_as_the_plain_one()
    {
        using var train = Faces(64);
        var losses = new List<double>[2];
        foreach (var (channelsLast, i) in new[] { (false, 0), (true, 1) })
        {
            manual_seed(1);
            using var model = new AutoEncoder(Tiny);
            using var trainer = new Trainer(model, Train, 4, Precision.Bf16, channelsLast);
            Assert.Equal(channelsLast, trainer.ChannelsLast);
            losses[i] = [];
            for (int step = 0; step < 4; step++)
            {
                using var plan = new EpochPlan(train, Train.BatchSize, Train.Seed, step / 2, flip: false);
                using var scope = NewDisposeScope();
                losses[i].Add(trainer.BatchUpdate(plan.Batch(step % 2, CPU)).Loss);
            }
        }
        // Same arithmetic in another memory order: bf16 rounding of different summation orders only.
        for (int step = 0; step < 4; step++)
            Assert.True(Math.Abs(losses[0][step] - losses[1][step]) < 0.01 * losses[0][step],
                $"step {step + 1}: {losses[0][step]:F3} vs {losses[1][step]:F3}");
        Assert.True(losses[1][3] < losses[1][0], "it trains");
    }
}
