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
        var shared = new RunOptions();
        var data = new Option<string?>("--data") { Description = "Images to reconstruct [default: the run's validation split]" }.Sets(Settings.Data.Source);
        var n = new Option<int>("--n") { Description = "Number of images", DefaultValueFactory = _ => 32 }.Sets(Settings.Pictures.ReconstructCount);
        var columns = new Option<int>("--columns") { Description = "Images per grid row", DefaultValueFactory = _ => 8 };

        var command = new Command("reconstruct", "Encode and decode images with a trained run; originals above reconstructions.") { data, n, columns };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            using var model = shared.Load(r);
            string? source = r.GetValue(data);
            using var loaded = model.LoadData(source);
            var images = TrainedModel.Showcase(loaded, runData: source is null, needed: 1);
            var (originals, reconstructions) = model.Reconstruct(images, r.GetValue(n));
            using (originals)
            using (reconstructions)
            {
                int cols = Math.Max(1, r.GetValue(columns));
                using var pairs = ImageGrid.Interleave(originals, reconstructions, cols);
                using var grid = ImageGrid.Make(pairs, cols, scale: shared.Scale(r));
                string path = shared.OutPath(r, model, "reconstruction");
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
