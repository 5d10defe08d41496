using System.CommandLine;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Imaging;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae sample</c>: decode draws from a prior (the family's own, or one fitted by vae prior) into a PNG grid.</summary>
internal static class SampleCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var shared = new RunOptions();
        var n = new Option<int>("--n") { Description = "Number of samples", DefaultValueFactory = _ => 64 }.Sets(Settings.Pictures.SampleCount);
        var temperature = new Option<double>("--temperature") { Description = "Scale of z ~ N(0, I); < 1 gives safer, blander faces", DefaultValueFactory = _ => 1.0 }.Sets(Settings.Pictures.Temperature);
        var seed = new Option<int>("--seed") { Description = "Seed of the z draws", DefaultValueFactory = _ => 0 };
        var prior = new Option<string>("--prior") { Description = "standard (the family's own), or a prior fitted by vae prior (gmm, autoregressive)", DefaultValueFactory = _ => Priors.PriorKinds.Standard };
        var columns = new Option<int>("--columns") { Description = "Images per grid row", DefaultValueFactory = _ => 8 };

        var command = new Command("sample", "Generate images from random latent codes of a trained run.") { n, temperature, seed, prior, columns };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            using var model = shared.Load(r);
            string priorName = r.GetValue(prior)!;
            if (model.Model.Config.Kind == ModelKinds.Ae && priorName == Priors.PriorKinds.Standard)
                console.MarkupLine("[yellow]note:[/] this is an AE: its codes were never pulled toward N(0, I), so prior samples show how far its latent space is from the prior.");
            using var images = model.Sample(r.GetValue(n), r.GetValue(temperature), r.GetValue(seed), priorName);
            string path = shared.OutPath(r, model, priorName == Priors.PriorKinds.Standard ? "samples" : $"samples-{priorName}");
            using var grid = ImageGrid.Make(images, Math.Max(1, r.GetValue(columns)), scale: shared.Scale(r));
            ImageGrid.SavePng(grid, path);
            console.MarkupLineInterpolated($"wrote {images.shape[0]} samples, {priorName} prior (step {model.Header.Step}, {Path.GetFileName(model.CheckpointPath)}) → {path}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
