using System.CommandLine;
using Spectre.Console;
using TorchSharp;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae reconstruct</c>: originals above their reconstructions, with the error measured.</summary>
internal static class ReconstructCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var run = RunOptions.Run();
        var checkpoint = RunOptions.Checkpoint();
        var device = RunOptions.Device();
        var output = RunOptions.Out();
        var data = new Option<string?>("--data") { Description = "Images to reconstruct [default: the run's validation split]" };
        var n = new Option<int>("--n") { Description = "Number of images", DefaultValueFactory = _ => 32 };
        var columns = new Option<int>("--columns") { Description = "Images per grid row", DefaultValueFactory = _ => 8 };
        var scale = RunOptions.Scale();

        var command = new Command("reconstruct", "Encode and decode images with a trained run; originals above reconstructions.") { run, checkpoint, data, n, columns, scale, device, output };
        command.SetAction(r =>
        {
            using var model = TrainedModel.Load(r.GetValue(run)!, r.GetValue(checkpoint)!, r.GetValue(device)!);
            string? source = r.GetValue(data);
            using var loaded = model.LoadData(source);
            var images = TrainedModel.Showcase(loaded, runData: source is null, needed: 1);
            var (originals, reconstructions) = model.Reconstruct(images, r.GetValue(n));
            using (originals)
            using (reconstructions)
            {
                int cols = Math.Max(1, r.GetValue(columns));
                using var pairs = ImageGrid.Interleave(originals, reconstructions, cols);
                using var grid = ImageGrid.Make(pairs, cols, scale: Math.Max(1, r.GetValue(scale)));
                string path = RunOptions.OutPath(r.GetValue(output), model.Run.Path, "reconstruction");
                ImageGrid.SavePng(grid, path);
                double mse;
                using (torch.NewDisposeScope())
                    mse = Losses.SquaredErrorPerImage(reconstructions, originals).mean().item<float>() / (originals.shape[1] * originals.shape[2] * originals.shape[3]);
                console.MarkupLineInterpolated($"wrote {originals.shape[0]} pairs (mse {mse:F5}, psnr {Losses.Psnr(mse):F2} dB) → {path}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
