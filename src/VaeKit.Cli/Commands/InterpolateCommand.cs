using System.CommandLine;
using Spectre.Console;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae interpolate</c>: walks in latent space between the codes of image pairs.</summary>
internal static class InterpolateCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var run = RunOptions.Run();
        var checkpoint = RunOptions.Checkpoint();
        var device = RunOptions.Device();
        var output = RunOptions.Out();
        var data = new Option<string?>("--data") { Description = "Images to take the pairs from [default: the run's validation split]" };
        var pairs = new Option<int>("--pairs") { Description = "Number of image pairs (one row each)", DefaultValueFactory = _ => 8 };
        var steps = new Option<int>("--steps") { Description = "Images per row, both ends included", DefaultValueFactory = _ => 10 };
        var scale = RunOptions.Scale();

        var command = new Command("interpolate", "Decode straight lines between the latent codes of image pairs.") { run, checkpoint, data, pairs, steps, scale, device, output };
        command.SetAction(r =>
        {
            using var model = TrainedModel.Load(r.GetValue(run)!, r.GetValue(checkpoint)!, r.GetValue(device)!);
            string? source = r.GetValue(data);
            using var loaded = model.LoadData(source);
            var images = TrainedModel.Showcase(loaded, runData: source is null, needed: 2 * r.GetValue(pairs));
            using var path = model.Interpolate(images, r.GetValue(pairs), r.GetValue(steps));
            using var grid = ImageGrid.Make(path, r.GetValue(steps), scale: Math.Max(1, r.GetValue(scale)));
            string file = RunOptions.OutPath(r.GetValue(output), model.Run.Path, "interpolation");
            ImageGrid.SavePng(grid, file);
            console.MarkupLineInterpolated($"wrote {r.GetValue(pairs)} interpolations of {r.GetValue(steps)} steps → {file}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
