using VaeKit.Config;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Training;

public class KlScheduleTests
{
    [Fact]
    public void Constant_is_the_kl_weight_at_every_step()
    {
        var s = KlSchedule.Parse("constant");
        Assert.Equal(2.5, s.At(2.5, 0, 100));
        Assert.Equal(2.5, s.At(2.5, 99, 100));
    }

    [Fact]
    public void Linear_warmup_rises_to_the_kl_weight_and_stays()
    {
        var s = KlSchedule.Parse("linear-warmup:10");
        Assert.Equal(0.2, s.At(2, 0, 100), 12);
        Assert.Equal(1.0, s.At(2, 4, 100), 12);
        Assert.Equal(2.0, s.At(2, 9, 100), 12);
        Assert.Equal(2.0, s.At(2, 50, 100), 12);
    }

    [Fact]
    public void Cyclical_restarts_each_cycle_and_holds_for_the_rest_of_it()
    {
        var s = KlSchedule.Parse("cyclical:2:0.5");     // 100 steps: cycles of 50, rising over the first 25
        Assert.Equal(0.04, s.At(1, 0, 100), 12);
        Assert.Equal(1.0, s.At(1, 24, 100), 12);
        Assert.Equal(1.0, s.At(1, 49, 100), 12);
        Assert.Equal(0.04, s.At(1, 50, 100), 12);
        Assert.Equal(0.48, s.At(1, 61, 100), 12);   // 12th step of the second cycle: 12/25
        Assert.Equal(KlSchedule.Parse("cyclical:3"), new KlSchedule(KlScheduleKind.Cyclical, Cycles: 3, Ratio: 0.5));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("linear-warmup")]
    [InlineData("linear-warmup:0")]
    [InlineData("cyclical:0")]
    [InlineData("cyclical:4:1.5")]
    [InlineData("constant:3")]
    public void Malformed_schedules_are_bad_input(string text)
    {
        var e = Assert.Throws<BadInputException>(() => new TrainConfig { KlSchedule = text }.Validate());
        Assert.Contains("linear-warmup:STEPS", e.Message);
    }

    [Fact]
    public void Free_bits_floor_each_dimension_and_leave_it_without_gradient_below_the_floor()
    {
        using var scope = NewDisposeScope();
        var x = zeros(2, 1, 2, 2);
        var mu = zeros(2, 3).requires_grad_(true);
        var logVar = zeros(2, 3);
        var output = Model.ObjectiveHelper.Output(x.clone(), mu, logVar);
        var terms = Model.ObjectiveHelper.Compute(output, x, klWeight: 2, freeBits: 0.5);
        Assert.Equal(2 * 3 * 0.5, terms.Loss.item<float>(), 5);   // KL is 0, counted as 0.5 per dimension
        Assert.Equal(0, terms[MetricNames.Kl]!.item<float>(), 6);               // reported: the true KL
        terms.Loss.backward();
        Assert.Equal(0, mu.grad!.abs().sum().item<float>(), 6);

        // Above the floor the loss is the plain one.
        var far = full(2, 3, 2f);
        var plain = Model.ObjectiveHelper.Compute(Model.ObjectiveHelper.Output(x.clone(), far, logVar), x, klWeight: 2).Loss.item<float>();
        var floored = Model.ObjectiveHelper.Compute(Model.ObjectiveHelper.Output(x.clone(), far, logVar), x, klWeight: 2, freeBits: 0.5).Loss.item<float>();
        Assert.Equal(plain, floored, 4);
    }
}

public class KlScheduleTrainerTests
{
    [Fact]
    public void Each_step_reports_the_effective_kl_weight_of_the_schedule()
    {
        var model = new ModelConfig { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 };
        var train = new TrainConfig { BatchSize = 8, KlWeight = 3, KlSchedule = "linear-warmup:4", Seed = 2 };
        manual_seed(3);
        using var images = new VaeKit.Data.DecodedImages(randint(0, 256, [8, 16, 16, 3]).to_type(ScalarType.Byte));
        using var net = new AutoEncoder(model);
        using var trainer = new Trainer(net, train, totalSteps: 6);
        var weights = new List<double>();
        for (int step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            using var plan = new EpochPlan(images, 8, train.Seed, epoch: step, flip: false);
            weights.Add(trainer.BatchUpdate(plan.Batch(0, CPU)).KlWeight);
        }
        Assert.Equal([0.75, 1.5, 2.25, 3, 3, 3], weights);
    }
}
