using VaeKit.Config;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// An optimizer over the trainer's one flat parameter buffer: zero the gradients, clip their global norm, step at a
/// learning rate, and write and read its state for an exact resume. <see cref="FlatAdamW"/> is the one VaeKit ships.
/// </summary>
internal interface IFlatOptimizer : IDisposable
{
    /// <summary>Zeroes every gradient of the buffer.</summary>
    void ZeroGrad();

    /// <summary>Clips the global gradient norm to <paramref name="maxNorm"/> (0 = off); returns the norm before
    /// clipping, on the device.</summary>
    Tensor ClipGradNorm(double maxNorm);

    /// <summary>One update at <paramref name="learningRate"/>.</summary>
    void Step(double learningRate);

    /// <summary>Writes the optimizer's state (moments, step count) after the model in a checkpoint.</summary>
    void Save(BinaryWriter writer);

    /// <summary>Reads what <see cref="Save"/> wrote.</summary>
    void Load(BinaryReader reader);
}

/// <summary>
/// Where the trainer gets its optimizer: the recipe (which parameters decay, a family's own step sizes) is decided
/// here, once, from the model and the config, so the trainer holds an <see cref="IFlatOptimizer"/> and never builds one.
/// </summary>
internal static class Optimizers
{
    /// <summary>Builds an optimizer over <paramref name="parameters"/> of <paramref name="model"/>.</summary>
    internal delegate IFlatOptimizer Factory(FlatParameters parameters, VaeModel model, TrainConfig config);

    /// <summary>
    /// AdamW with decoupled weight decay on conv and linear weights only (decaying norm scales and biases toward zero
    /// fights normalisation and buys nothing), β1, β2 and the decay from <paramref name="config"/>; a family may give
    /// a parameter its own step size (<see cref="VaeModel.StepSizeScale"/>: σ-VAE's learned log σ), and the scale
    /// buffer exists only then.
    /// </summary>
    public static IFlatOptimizer AdamW(FlatParameters parameters, VaeModel model, TrainConfig config)
    {
        var stepScale = parameters.Slots.Any(slot => model.StepSizeScale(slot.Name) != 1)
            ? parameters.Fill(slot => model.StepSizeScale(slot.Name))
            : null;
        return new FlatAdamW(parameters, parameters.Mask(slot => slot.Parameter.dim() > 1), config.Beta1, config.Beta2, config.WeightDecay,
                             stepScale: stepScale);
    }
}
