using System.CommandLine;
using Spectre.Console;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae sample</c>: decode draws from the prior N(0, T²·I) into a PNG grid.</summary>
internal static class SampleCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var run = RunOptions.Run();
        var checkpoint = RunOptions.Checkpoint();
        var device = RunOptions.Device();
        var output = RunOptions.Out();
        var n = new Option<int>("--n") { Description = "Number of samples", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "Scale of z ~ N(0, I); < 1 gives safer, blander faces", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the z draws", DefaultValueFactory = _ => 0 };
        var columns = new Option<int>("--columns") { Description = "Images per grid row", DefaultValueFactory = _ => 8 };
        var scale = RunOptions.Scale();

        var command = new Command("sample", "Generate images from random latent codes of a trained run.") { run, checkpoint, n, temperature, seed, columns, scale, device, output };
        command.SetAction(r =>
        {
            using var model = TrainedModel.Load(r.GetValue(run)!, r.GetValue(checkpoint)!, r.GetValue(device)!);
            if (!model.Model.IsVariational)
                console.MarkupLine("[yellow]note:[/] this is an AE: its codes were never pulled toward N(0, I), so prior samples show how far its latent space is from the prior.");
            using var images = model.Sample(r.GetValue(n), r.GetValue(temperature), r.GetValue(seed));
            string path = RunOptions.OutPath(r.GetValue(output), model.Run.Path, "samples");
            using var grid = ImageGrid.Make(images, Math.Max(1, r.GetValue(columns)), scale: Math.Max(1, r.GetValue(scale)));
            ImageGrid.SavePng(grid, path);
            console.MarkupLineInterpolated($"wrote {images.shape[0]} samples (step {model.Header.Step}, {Path.GetFileName(model.CheckpointPath)}) → {path}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
