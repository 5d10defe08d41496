using System.Text.Json.Nodes;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

/// <summary>The vector quantiser's maths on hand-built tensors, and the VQ-VAE model around it.</summary>
public class VqVaeTests
{
    private static ModelConfig Small(int codebook = 16, int codeDim = 2, int deadAfter = 100) =>
        new ModelConfig
        {
            Kind = ModelKinds.VqVae, ImageSize = 8, Widths = [4, 8], Blocks = 1, Latent = 8, InChannels = 3,
            Options = new JsonObject { ["codebook"] = codebook, ["code_dim"] = codeDim, ["dead_after"] = deadAfter },
        }.Validate();

    private static VqVae Build(ModelConfig config) => (VqVae)ModelFactory.Create(config);

    private static DecodedImages RandomImages(int count, int size = 8, int seed = 11)
    {
        var generator = new Generator((ulong)seed);
        return new DecodedImages(randint(0, 256, [count, size, size, 3], generator: generator).to_type(ScalarType.Byte));
    }

    private static float[] Values(Tensor t) => t.detach().cpu().contiguous().data<float>().ToArray();

    [Fact]
    public void Each_vector_gets_its_nearest_code()
    {
        using var scope = NewDisposeScope();
        var codebook = tensor(new float[] { 0, 0, 1, 0, 0, 1, 5, 5 }).view(4, 2);
        var points = tensor(new float[] { 0.1f, -0.1f, 0.9f, 0.2f, 0.2f, 0.8f, 4, 6, 0.6f, 0.1f }).view(5, 2);

        var nearest = VectorQuantiser.Nearest(points, codebook).data<long>().ToArray();

        Assert.Equal(new long[] { 0, 1, 2, 3, 1 }, nearest);   // (0.6, 0.1): 0.37 from (0,0), 0.17 from (1,0)
    }

    [Fact]
    public void The_straight_through_estimator_has_the_codes_value_and_the_identitys_gradient()
    {
        using var scope = NewDisposeScope();
        var encoded = tensor(new float[] { 0.3f, -1.2f, 2.0f }).view(1, 3).requires_grad_();
        var quantised = tensor(new float[] { 0.0f, -1.0f, 2.5f }).view(1, 3);
        var weights = tensor(new float[] { 2, -3, 0.5f }).view(1, 3);

        var passed = VectorQuantiser.StraightThrough(encoded, quantised);
        (passed * weights).sum().backward();

        Assert.All(Values(quantised).Zip(Values(passed)), v => Assert.Equal(v.First, v.Second, 5));
        Assert.Equal(Values(weights), Values(encoded.grad!));            // d(w·e)/dz_e = w: the quantiser passes gradients unchanged
    }

    [Fact]
    public void The_commitment_term_pulls_the_encoder_not_the_code()
    {
        using var scope = NewDisposeScope();
        var encoded = tensor(new float[] { 1, 2, 0, 0 }).view(2, 2).requires_grad_();
        var quantised = tensor(new float[] { 0, 0, 3, 4 }).view(2, 2).requires_grad_();

        var commitment = VectorQuantiser.Commitment(encoded, quantised);
        commitment.sum().backward();

        Assert.Equal(new float[] { 5, 25 }, Values(commitment));        // ‖(1,2)‖², ‖(−3,−4)‖² per image
        Assert.Equal(new float[] { 2, 4, -6, -8 }, Values(encoded.grad!));   // 2(z_e − e)
        Assert.True(quantised.grad is null || quantised.grad.abs().sum().item<float>() == 0);
    }

    [Fact]
    public void Perplexity_counts_how_evenly_the_codes_are_used()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(4, VectorQuantiser.Perplexity(tensor(new long[] { 0, 1, 2, 3, 3, 2, 1, 0 }), 8).item<float>(), 4);
        Assert.Equal(1, VectorQuantiser.Perplexity(tensor(new long[] { 5, 5, 5 }), 8).item<float>(), 4);
    }

    [Fact]
    public void The_ema_update_moves_each_code_to_the_smoothed_average_of_its_vectors()
    {
        using var scope = NewDisposeScope();
        const double decay = 0.5, eps = 0.1;
        var codebook = tensor(new float[] { 0, 10 }).view(2, 1);
        var count = tensor(new float[] { 1, 1 });
        var sum = tensor(new float[] { 0, 10 }).view(2, 1);
        var unused = zeros(2);
        var flat = tensor(new float[] { 1, 3, 9 }).view(3, 1);          // two vectors near code 0, one near code 1
        var indices = tensor(new long[] { 0, 0, 1 });

        VectorQuantiser.Update(codebook, count, sum, unused, flat, indices, decay, eps, deadAfter: 0, noise: null);

        // N = ½·1 + ½·(2, 1) = (1.5, 1); m = ½·(0, 10) + ½·(4, 9) = (2, 9.5); ΣN = 2.5;
        // Ñ = (N + 0.1) / (2.5 + 0.2) · 2.5 = (1.6, 1.1) · 2.5 / 2.7; e = m / Ñ.
        Assert.Equal(new float[] { 1.5f, 1 }, Values(count));
        Assert.Equal(new float[] { 2, 9.5f }, Values(sum));
        var expected = new[] { 2 / (1.6 * 2.5 / 2.7), 9.5 / (1.1 * 2.5 / 2.7) };
        var actual = Values(codebook);
        Assert.Equal(expected[0], actual[0], 4);
        Assert.Equal(expected[1], actual[1], 4);
        Assert.Equal(new float[] { 0, 0 }, Values(unused));
    }

    [Fact]
    public void A_code_unused_for_long_enough_is_restarted_on_a_vector_of_the_batch()
    {
        using var scope = NewDisposeScope();
        var codebook = tensor(new float[] { 0, 0, 100, 100, -50, 50 }).view(3, 2);
        var count = tensor(new float[] { 2, 0.01f, 0.01f });
        var sum = codebook * count.unsqueeze(1);
        var unused = tensor(new float[] { 0, 2, 0 });                    // code 1 was last chosen 2 steps ago, code 2 just now
        var flat = tensor(new float[] { 0.5f, 0, -0.5f, 0, 0, 0.5f }).view(3, 2);
        var indices = tensor(new long[] { 0, 0, 0 });                    // everything goes to code 0
        using var noise = new Generator(7);

        VectorQuantiser.Update(codebook, count, sum, unused, flat, indices, 0.99, 1e-5, deadAfter: 3, noise);

        var rows = Values(codebook).Chunk(2).ToArray();
        var batch = Values(flat).Chunk(2).ToArray();
        Assert.Contains(batch, v => v.SequenceEqual(rows[1]));           // 3 steps unused: now one of the batch's vectors
        Assert.Equal(1, Values(count)[1]);
        Assert.Equal(0, Values(unused)[1]);
        Assert.Equal(1, Values(unused)[2]);                              // 1 step unused: kept, still counting
        Assert.DoesNotContain(batch, v => v.SequenceEqual(rows[2]));
    }

    [Fact]
    public void Sizes_come_from_the_shape_unless_given_and_bad_options_are_refused()
    {
        var tiny = (Presets.Tiny with { Kind = ModelKinds.VqVae }).Validate().OptionsAs<VqVaeOptions>();
        Assert.Equal((256, 4), (tiny.Codebook, tiny.CodeDim));
        var baseline = (Presets.Base with { Kind = ModelKinds.VqVae }).Validate().OptionsAs<VqVaeOptions>();
        Assert.Equal((512, 8), (baseline.Codebook, baseline.CodeDim));
        var odd = (Presets.Tiny with { Kind = ModelKinds.VqVae, Latent = 30 }).Validate().OptionsAs<VqVaeOptions>();
        Assert.Equal(3, odd.CodeDim);                                    // the largest divisor of 30 up to 4

        Assert.Contains("code_dim", Assert.Throws<BadInputException>(() => (Presets.Tiny with
        { Kind = ModelKinds.VqVae, Options = new JsonObject { ["code_dim"] = 5 } }).Validate()).Message);
        Assert.Contains("model.options.codebok", Assert.Throws<BadInputException>(() => (Presets.Tiny with
        { Kind = ModelKinds.VqVae, Options = new JsonObject { ["codebok"] = 5 } }).Validate()).Message);
    }

    [Fact]
    public void Training_passes_move_the_codebook_and_evaluation_passes_do_not()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = Build(Small());
        var x = DecodedImages.ToModelInput(RandomImages(8).Pixels, CPU);
        var before = Values(model.Codebook);

        model.eval();
        using (no_grad()) model.call(x);
        Assert.Equal(before, Values(model.Codebook));

        model.train();
        var output = model.call(x);
        Assert.NotEqual(before, Values(model.Codebook));
        Assert.Equal(new long[] { 8, 8 }, output.Z.shape);
        Assert.Equal(x.shape, output.Reconstruction.shape);

        // Every decoded code is a row of the codebook as it stood before this step's update, in both modes.
        var rows = before.Chunk(2).Select(r => (r[0], r[1])).ToHashSet();
        var quantised = ((QuantisedPosterior)output.Posterior).Quantised;
        Assert.All(Values(quantised).Chunk(2), v => Assert.Contains((v[0], v[1]), rows));
        Assert.True(output.Z.allclose(quantised, rtol: 0, atol: 1e-5));   // the decoded code has the codes' values
    }

    [Fact]
    public void The_objective_names_its_terms_and_backpropagates_to_the_encoder()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var model = Build(Small());
        model.train();
        var x = DecodedImages.ToModelInput(RandomImages(8).Pixels, CPU);

        var objective = model.Objective(model.call(x), x, new LossContext(KlWeight: 1));
        objective.Loss.backward();

        Assert.Equal(["reconstruction", "commitment", "perplexity", "mse"], objective.Terms.Select(t => t.Name));
        double expected = objective["reconstruction"]!.item<float>() + 0.25 * objective["commitment"]!.item<float>();
        Assert.Equal(expected, objective.Loss.item<float>(), 3);
        var encoderGradient = model.named_parameters().First(p => p.name.StartsWith("encoder.")).parameter.grad;
        Assert.NotNull(encoderGradient);
        Assert.True(encoderGradient.abs().sum().item<float>() > 0);     // through the straight-through code
        Assert.Contains(model.named_buffers(), b => b.name == "codebook");          // a buffer: saved, not trained
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("codebook"));
    }

    [Fact]
    public void Decode_snaps_codes_to_the_codebook()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = Build(Small());
        model.eval();
        using var noGrad = no_grad();
        var code = model.Codebook.index_select(0, tensor(new long[] { 1, 2, 3, 4 })).view(1, 8);

        var nudged = model.Decode(code + 1e-3f);

        Assert.True(model.Decode(code).equal(nudged).all().item<bool>());
    }

    [Fact]
    public void The_prior_is_fitted_from_the_codes_and_samples_follow_it()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        using var model = Build(Small());
        var images = RandomImages(40);
        Assert.False(model.PriorFitted);
        Assert.NotNull(model.Unsupported(ModelOperation.Sample));

        model.FitPrior(images, batchSize: 16, CPU);

        Assert.True(model.PriorFitted);
        Assert.Null(model.Unsupported(ModelOperation.Sample));
        Assert.Equal(new long[] { 4, 16 }, model.PriorCounts.shape);
        Assert.All(Values(model.PriorCounts.sum(1)), total => Assert.Equal(40, total));   // one code per image per position
        using var generator = new Generator(1);
        var samples = model.SamplePrior(200, 1.0, generator, CPU);                       // (200, 8)
        var used = model.PriorCounts.gt(0);                                               // (L, K)
        var drawn = VectorQuantiser.Nearest(samples.view(-1, 2), model.Codebook).view(200, 4);
        long seenCodes = 0, total = 0;
        for (int position = 0; position < 4; position++)
            foreach (var code in drawn[.., position].data<long>())
            {
                total++;
                if (used[position, code].item<bool>()) seenCodes++;
            }
        // Laplace smoothing leaves unseen codes a little mass (1 each against 40 counts): most draws are seen codes.
        Assert.True(seenCodes > 0.6 * total, $"{seenCodes} of {total} draws were codes seen at their position");
        var greedy = model.SamplePrior(3, 0, generator, CPU);
        Assert.True(greedy[0].equal(greedy[2]).all().item<bool>());
    }

    [Fact]
    public void Code_statistics_count_perplexity_and_dead_codes_over_all_codes()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var model = Build(Small());
        var codes = model.Codebook.index_select(0, tensor(new long[] { 0, 1, 2, 3, 0, 1, 2, 3 })).view(2, 8).to(ScalarType.Float64);

        var statistics = model.CodeStatistics(codes).ToDictionary(s => s.Name, s => s.Value);

        Assert.Equal(4, statistics["code_perplexity"], 3);
        Assert.Equal(4, statistics["codes_used"]);
        Assert.Equal(12, statistics["dead_codes"]);
    }

    [Fact]
    public void Resuming_from_a_checkpoint_reproduces_the_uninterrupted_run_exactly_restarts_included()
    {
        var config = Small(codebook: 32, deadAfter: 2);                  // restarts happen every few steps
        var train = new TrainConfig { BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 2, Seed = 5 };
        using var images = RandomImages(32);
        using var dir = new TempDir();
        var run = new RunConfig { Name = "t", Model = config, Train = train, Data = new DataConfig() };

        List<double> Steps(Trainer trainer, int from, int to)
        {
            var losses = new List<double>();
            for (int step = from; step < to; step++)
            {
                using var plan = new EpochPlan(images, train.BatchSize, train.Seed, epoch: step / 4, flip: true);
                using var scope = NewDisposeScope();
                losses.Add(trainer.BatchUpdate(plan.Batch(step % 4, CPU)).Loss);
            }
            return losses;
        }

        manual_seed(1);
        using var straightModel = Build(config);
        using var straight = new Trainer(straightModel, train, totalSteps: 10);
        var expected = Steps(straight, 0, 10);

        manual_seed(1);
        using var firstModel = Build(config);
        using var first = new Trainer(firstModel, train, totalSteps: 10);
        var actual = Steps(first, 0, 5);
        Checkpoint.Save(dir["last.ckpt"], new CheckpointHeader { Config = run, Step = first.Step }, first);
        manual_seed(99);

        var (_, resumed) = Checkpoint.Load(dir["last.ckpt"], train, totalSteps: 10, CPU);
        using (resumed.Model)
        using (resumed)
        {
            actual.AddRange(Steps(resumed, 5, 10));
            Assert.Equal(Values(((VqVae)straight.Model).Codebook), Values(((VqVae)resumed.Model).Codebook));
        }
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Bf16_training_quantises_in_fp32_and_updates_the_fp32_codebook()
    {
        var config = Small();
        var train = new TrainConfig { BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 1, Seed = 5 };
        using var images = RandomImages(16);
        manual_seed(2);
        using var model = Build(config);
        using var trainer = new Trainer(model, train, totalSteps: 3, Precision.Bf16);
        var before = Values(model.Codebook);
        using var plan = new EpochPlan(images, train.BatchSize, train.Seed, epoch: 0, flip: false);

        for (int i = 0; i < 2; i++)
        {
            using var scope = NewDisposeScope();
            var step = trainer.BatchUpdate(plan.Batch(i, CPU));
            Assert.True(double.IsFinite(step.Loss));
            Assert.True(step.Values["perplexity"] >= 1);
        }

        Assert.Equal(ScalarType.Float32, model.Codebook.dtype);
        Assert.NotEqual(before, Values(model.Codebook));                  // the twin's updates reached the master's buffer
    }
}
