using TorchSharp.Modules;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Benchmarks;

/// <summary>
/// Multiply-add work of one image through the model, counted from the shapes a real forward pass produces (forward
/// hooks on every conv, transposed conv and linear layer), at 2 FLOPs per multiply-add. Normalisation, activations,
/// the loss and the optimizer are not counted: they are memory-bound and a few percent of the arithmetic.
/// A training step is taken as 3× the forward work (forward, then gradients for inputs and for weights).
/// </summary>
internal static class FlopCount
{
    /// <summary>FLOPs (2 per multiply-add) of one image's forward pass through a model of <paramref name="config"/>, measured by running one image through a freshly built model on the CPU.</summary>
    public static double ForwardPerImage(ModelConfig config)
    {
        using var scope = NewDisposeScope();
        using var model = Models.ModelFactory.Create(config);
        double flops = 0;
        var removers = new List<Action>();
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    removers.Add(conv.register_forward_hook((_, input, output) =>
                    {
                        // out (1, Co, Ho, Wo): each output element is Ci·kh·kw multiply-adds
                        flops += 2.0 * output.numel() * input.shape[1] * conv.weight!.shape[2] * conv.weight.shape[3];
                        return output;
                    }).remove);
                    break;
                case ConvTranspose2d deconv:
                    removers.Add(deconv.register_forward_hook((_, input, output) =>
                    {
                        // every input element is scattered into Co·kh·kw outputs
                        flops += 2.0 * input.numel() * deconv.weight!.shape[1] * deconv.weight.shape[2] * deconv.weight.shape[3];
                        return output;
                    }).remove);
                    break;
                case Linear linear:
                    removers.Add(linear.register_forward_hook((_, input, output) =>
                    {
                        flops += 2.0 * output.numel() * input.shape[^1];
                        return output;
                    }).remove);
                    break;
            }
        }
        model.eval();
        using (no_grad())
            model.call(zeros(1, config.InChannels, config.ImageSize, config.ImageSize));
        foreach (var remove in removers) remove();
        return flops;
    }

    /// <summary>FLOPs of one image's training step: 3 × <see cref="ForwardPerImage"/>.</summary>
    public static double TrainStepPerImage(ModelConfig config) => 3 * ForwardPerImage(config);
}
