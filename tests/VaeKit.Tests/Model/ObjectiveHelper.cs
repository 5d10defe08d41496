using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

/// <summary>The lab's default objective (<see cref="VaeModel.Objective"/>) on hand-built outputs.</summary>
internal static class ObjectiveHelper
{
    private static readonly AutoEncoder Any = new(new ModelConfig { Widths = [4], ImageSize = 2, Latent = 1, InChannels = 1 });

    public static Objective Compute(ModelOutput output, Tensor target, double klWeight, double freeBits = 0) =>
        Any.Objective(output, target, new LossContext(klWeight, freeBits));

    public static ModelOutput Output(Tensor reconstruction, Tensor mu, Tensor? logVar) =>
        new(reconstruction, logVar is null ? new PointPosterior(mu) : new GaussianPosterior(mu, logVar), mu);
}
