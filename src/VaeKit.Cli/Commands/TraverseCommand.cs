using System.CommandLine;
using Spectre.Console;
using VaeKit.Evaluation;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae traverse</c>: what each of the busiest latent dimensions does to one image.</summary>
internal static class TraverseCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var shared = new RunOptions();
        var data = new Option<string?>("--data") { Description = "Images for the base code and the codes' spread [default: the run's validation split]" }.Sets(Settings.Data.Source);
        var dims = new Option<int>("--dims") { Description = "Rows: the K dimensions with the largest KL (AE: largest code variance)", DefaultValueFactory = _ => 8 }.Sets(Settings.Pictures.Dims);
        var steps = new Option<int>("--steps") { Description = "Images per row, from −3σ to +3σ", DefaultValueFactory = _ => 9 }.Sets(Settings.Pictures.TraversalSteps);
        var image = new Option<int>("--image") { Description = "Index of the image whose code is the base", DefaultValueFactory = _ => 0 }.Sets(Settings.Pictures.Image);

        var command = new Command("traverse", "Decode rows from −3σ to +3σ along the latent dimensions with the largest KL, around one image's code.") { data, dims, steps, image };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            using var model = shared.Load(r);
            string? source = r.GetValue(data);
            using var loaded = model.LoadData(source);
            var images = TrainedModel.Showcase(loaded, runData: source is null, needed: 2);
            using var traversal = LatentTraversal.Run(model, images, r.GetValue(dims), r.GetValue(steps), r.GetValue(image));
            using var grid = ImageGrid.Make(traversal.Images, r.GetValue(steps), scale: shared.Scale(r));
            string file = shared.OutPath(r, model, "traversal");
            ImageGrid.SavePng(grid, file);
            console.MarkupLineInterpolated(
                $"rows (dimension {traversal.ScoreName}): {string.Join("  ", traversal.Dimensions.Zip(traversal.Scores, (d, s) => $"z{d} {s:F2}"))}");
            console.MarkupLineInterpolated($"wrote {traversal.Dimensions.Length} traversals of {r.GetValue(steps)} steps → {file}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
