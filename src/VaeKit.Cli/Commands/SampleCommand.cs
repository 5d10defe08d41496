using System.CommandLine;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae sample</c>: decode draws from the prior N(0, T²·I) into a PNG grid.</summary>
internal static class SampleCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var shared = new RunOptions();
        var n = new Option<int>("--n") { Description = "Number of samples", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "Scale of z ~ N(0, I); < 1 gives safer, blander faces", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the z draws", DefaultValueFactory = _ => 0 };
        var columns = new Option<int>("--columns") { Description = "Images per grid row", DefaultValueFactory = _ => 8 };

        var command = new Command("sample", "Generate images from random latent codes of a trained run.") { n, temperature, seed, columns };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            using var model = shared.Load(r);
            if (model.Model.Config.Kind == ModelKinds.Ae)
                console.MarkupLine("[yellow]note:[/] this is an AE: its codes were never pulled toward N(0, I), so prior samples show how far its latent space is from the prior.");
            using var images = model.Sample(r.GetValue(n), r.GetValue(temperature), r.GetValue(seed));
            string path = shared.OutPath(r, model, "samples");
            using var grid = ImageGrid.Make(images, Math.Max(1, r.GetValue(columns)), scale: shared.Scale(r));
            ImageGrid.SavePng(grid, path);
            console.MarkupLineInterpolated($"wrote {images.shape[0]} samples (step {model.Header.Step}, {Path.GetFileName(model.CheckpointPath)}) → {path}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
