using TorchSharp;
using TorchSharp.Modules;
using VaeKit.Config;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Training;

/// <summary>The flat-buffer optimizer must be AdamW, not merely fast: it is checked against TorchSharp's own AdamW.</summary>
public class FlatOptimizerTests
{
    private static readonly ModelConfig Small = new() { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 };

    [Fact]
    public void Parameters_become_views_of_one_buffer_that_autograd_and_the_module_both_see()
    {
        manual_seed(3);
        using var model = new AutoEncoder(Small);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        using var flat = new FlatParameters(model.named_parameters().ToList());

        Assert.Equal(model.ParameterCount, flat.Count);
        foreach (var (p, b) in model.parameters().Zip(before))
            Assert.True(p.equal(b).all().item<bool>(), "values survive the move into the buffer");

        using (no_grad()) flat.Values.mul_(0.5);
        foreach (var (p, b) in model.parameters().Zip(before))
            Assert.True(p.allclose(b * 0.5), "a write to the buffer is a write to the parameter");

        using var x = rand(2, 3, 16, 16);
        model.train();
        model.call(x).Reconstruction.sum().backward();
        Assert.True(flat.Grads.abs().sum().item<float>() > 0,
            $"gradients land in the flat gradient buffer (param grad sum {model.parameters().Sum(p => p.grad is null ? -1 : p.grad.abs().sum().item<float>())})");
        var slot = flat.Slots[0];
        Assert.True(flat.Grads.narrow(0, slot.Offset, slot.Count).equal(slot.Parameter.grad!.flatten()).all().item<bool>());
    }

    [Fact]
    public void Flat_AdamW_matches_TorchSharps_AdamW_step_for_step()
    {
        var train = new TrainConfig { LearningRate = 3e-3, WeightDecay = 0.1, WarmupSteps = 0, Schedule = LrSchedule.Constant, GradClip = 0 };
        manual_seed(4);
        using var reference = new AutoEncoder(Small);
        manual_seed(4);
        using var flatModel = new AutoEncoder(Small);
        using var trainer = new Trainer(flatModel, train, totalSteps: 5);
        var parameters = reference.parameters().ToArray();
        using var adam = optim.AdamW(
            [
                new AdamW.ParamGroup(parameters.Where(p => p.dim() > 1), lr: train.LearningRate, beta1: train.Beta1, beta2: train.Beta2, weight_decay: train.WeightDecay),
                new AdamW.ParamGroup(parameters.Where(p => p.dim() <= 1), lr: train.LearningRate, beta1: train.Beta1, beta2: train.Beta2, weight_decay: 0),
            ],
            lr: train.LearningRate);

        var generator = new Generator(9);
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            var x = rand([8, 3, 16, 16], generator: generator);
            reference.eval(); flatModel.eval();   // z = mu: both see the same forward pass, no noise to align
            var loss = reference.Objective(reference.call(x), x, new LossContext(1)).Loss;
            adam.zero_grad();
            loss.backward();
            adam.step();
            trainer.Parameters.Grads.zero_();
            flatModel.Objective(flatModel.call(x), x, new LossContext(1)).Loss.backward();
            trainer.Modules[0].Optimizer.Step(train.LearningRate);
        }

        foreach (var ((name, p), q) in reference.named_parameters().Zip(flatModel.parameters()))
            Assert.True(p.allclose(q, rtol: 1e-4, atol: 1e-6), $"{name} differs after 5 AdamW steps");
    }

    [Fact]
    public void Gradient_clipping_caps_the_norm_like_clip_grad_norm()
    {
        manual_seed(5);
        using var model = new AutoEncoder(Small);
        using var flat = new FlatParameters(model.named_parameters().ToList());
        using var adam = new FlatAdamW(flat, flat.Mask(_ => true), 0.9, 0.999, 0);
        using (no_grad()) flat.Grads.copy_(randn(flat.Count) * 10);
        double before = flat.Grads.norm(2f).item<float>();
        using var reported = adam.ClipGradNorm(1.0);
        Assert.Equal(before, reported.item<float>(), 3);
        Assert.Equal(1.0, flat.Grads.norm(2f).item<float>(), 3);
    }
}
