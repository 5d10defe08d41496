using System.CommandLine;
using Spectre.Console;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae interpolate</c>: walks in latent space between the codes of image pairs.</summary>
internal static class InterpolateCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var shared = new RunOptions();
        var data = new Option<string?>("--data") { Description = "Images to take the pairs from [default: the run's validation split]" }.Sets(Settings.Data.Source);
        var pairs = new Option<int>("--pairs") { Description = "Number of image pairs (one row each)", DefaultValueFactory = _ => 8 }.Sets(Settings.Pictures.Pairs);
        var steps = new Option<int>("--steps") { Description = "Images per row, both ends included", DefaultValueFactory = _ => 10 }.Sets(Settings.Pictures.InterpolationSteps);
        var mode = new Option<string>("--mode") { Description = "linear, or slerp (spherical: keeps the code's norm, as prior samples have)", HelpName = "linear|slerp", DefaultValueFactory = _ => "linear" };
        mode.AcceptOnlyFromAmong("linear", "slerp");

        var command = new Command("interpolate", "Decode straight lines (or great-circle arcs) between the latent codes of image pairs.") { data, pairs, steps, mode };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            using var model = shared.Load(r);
            string? source = r.GetValue(data);
            using var loaded = model.LoadData(source);
            var images = TrainedModel.Showcase(loaded, runData: source is null, needed: 2 * r.GetValue(pairs));
            using var path = model.Interpolate(images, r.GetValue(pairs), r.GetValue(steps), spherical: r.GetValue(mode) == "slerp");
            using var grid = ImageGrid.Make(path, r.GetValue(steps), scale: shared.Scale(r));
            string file = shared.OutPath(r, model, "interpolation");
            ImageGrid.SavePng(grid, file);
            console.MarkupLineInterpolated($"wrote {r.GetValue(pairs)} {r.GetValue(mode)} interpolations of {r.GetValue(steps)} steps → {file}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
