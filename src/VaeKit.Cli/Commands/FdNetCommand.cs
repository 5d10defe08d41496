using System.CommandLine;
using Spectre.Console;
using VaeKit.Evaluation;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae fd-net train</c>: train the Fréchet distance's feature network, as shipped in src/VaeKit/Resources.</summary>
internal static class FdNetCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var defaults = new FeatureNetworkRecipe { Data = "faces" };
        var data = new Option<string>("--data") { Description = "fashion-mnist or faces", Required = true };
        var fashion = new Option<string?>("--fashion-mnist-dir") { Description = "Fashion-MNIST folder [default: /usr/share/datasets/fashion-mnist]" };
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training images", DefaultValueFactory = _ => defaults.Epochs };
        var seed = new Option<int>("--seed") { Description = "Seed of the initialisation, batch order and flips", DefaultValueFactory = _ => defaults.Seed };
        var faces = new Option<int>("--face-images") { Description = "Faces: training images", DefaultValueFactory = _ => defaults.FaceTrainImages };
        var output = new Option<string>("--out") { Description = "Folder for fd-NAME.safetensors and fd-NAME.json (the shipped ones: src/VaeKit/Resources)", DefaultValueFactory = _ => "." };
        var threads = new Option<int>("--threads") { Description = "libtorch CPU threads; the weights are reproducible at the same count", DefaultValueFactory = _ => 2 }.Sets(Settings.Runtime.Threads);

        var train = new Command("train", "Train a feature network deterministically on the CPU and write its weights and record (recipe, test accuracy, SHA-256).")
        {
            data, fashion, epochs, seed, faces, output, threads,
        };
        train.SetAction((r, ct) =>
        {
            TorchRuntime.SetThreads(r.GetValue(threads));
            var recipe = new FeatureNetworkRecipe
            {
                Data = r.GetValue(data)!, FashionMnistDirectory = r.GetValue(fashion), Epochs = r.GetValue(epochs),
                Seed = r.GetValue(seed), FaceTrainImages = r.GetValue(faces),
            }.Validate();
            string command = $"vae fd-net train --data {recipe.Data} --epochs {recipe.Epochs} --seed {recipe.Seed} --threads {r.GetValue(threads)}" +
                             (recipe.Data == "faces" ? $" --face-images {recipe.FaceTrainImages}" : "");
            var record = FeatureNetworkTraining.Train(recipe, r.GetValue(output)!, command, line => console.MarkupLineInterpolated($"  {line}"), ct);
            console.MarkupLineInterpolated($"[green]trained[/] fd-{record.Name}: {record.Parameters:N0} parameters, {record.Bytes:N0} bytes, mean test accuracy {record.MeanTestAccuracy:P2}, sha256 {record.Sha256} ({record.Seconds:F0} s)");
            return Task.FromResult(ExitCodes.Ok);
        });
        return new Command("fd-net", "The feature networks of the Fréchet distance (vae fd, vae eval).") { train };
    }
}
