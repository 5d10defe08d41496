using VaeKit.Config;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Export;

/// <summary>Builds small models with non-trivial BatchNorm statistics and run directories holding them.</summary>
internal static class ExportFixture
{
    public static readonly ModelConfig Small = new() { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 };

    /// <summary>A model from <paramref name="seed"/> whose running statistics moved (three training-mode passes).</summary>
    public static AutoEncoder Model(ModelConfig config, int seed)
    {
        manual_seed(seed);
        var model = new AutoEncoder(config);
        using (no_grad())
        {
            model.train();
            for (int i = 0; i < 3; i++)
            {
                using var scope = NewDisposeScope();
                model.call(rand(8, config.InChannels, config.ImageSize, config.ImageSize) * (1 + i));
            }
        }
        model.eval();
        return model;
    }

    /// <summary>RUN/checkpoints/last.ckpt holding <paramref name="model"/> at <paramref name="step"/>; returns the run directory.</summary>
    public static string Run(string root, VaeModel model, long step = 7, string name = "run")
    {
        var dir = new RunDirectory(Path.Combine(root, name));
        dir.Create();
        var config = new RunConfig { Name = name, Model = model.Config, Train = new TrainConfig(), Data = new DataConfig() };
        using var trainer = new Trainer(model, config.Train, totalSteps: 10);
        Checkpoint.Save(dir.Last, new CheckpointHeader { Config = config, Step = step, Epoch = 2 }, trainer);
        return dir.Path;
    }

    /// <summary>Evaluation-mode (reconstruction, mu) of <paramref name="model"/> for <paramref name="x"/>.</summary>
    public static (Tensor Reconstruction, Tensor Mu) Outputs(VaeModel model, Tensor x)
    {
        using var noGrad = no_grad();
        model.eval();
        var output = model.call(x);
        return (output.Reconstruction, output.Code);
    }
}
