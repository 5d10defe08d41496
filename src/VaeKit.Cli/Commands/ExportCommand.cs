using System.CommandLine;
using Spectre.Console;
using VaeKit.Export;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae export --run DIR [--checkpoint best|last|FILE] --format safetensors [--out FILE]</c>: a run's weights as a
/// safetensors file under the tensor names of PyTorch's twin (bench/pytorch_bench.py; docs/export.md).
/// </summary>
internal static class ExportCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run directory written by vae train", Required = true }.Sets(Settings.Run.Directory);
        var checkpoint = new Option<string>("--checkpoint") { Description = "best, last, or a checkpoint file", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
        var format = new Option<string>("--format") { Description = "File format (only safetensors)", DefaultValueFactory = _ => "safetensors" };
        var output = new Option<string?>("--out") { Description = "File to write [default: RUN/<checkpoint>.safetensors]" };

        var command = new Command("export", "Write a run's weights (and BatchNorm statistics) as a safetensors file PyTorch can load.")
        {
            run, checkpoint, format, output,
        };
        command.SetAction(r =>
        {
            if (r.GetValue(format) is not "safetensors")
                throw new BadInputException($"--format {r.GetValue(format)} is not supported; use --format safetensors.");
            var dir = new RunDirectory(r.GetValue(run)!);
            string source = dir.Checkpoint(r.GetValue(checkpoint)!);
            string target = r.GetValue(output) ?? Path.Combine(dir.Path, Path.GetFileNameWithoutExtension(source) + ".safetensors");
            var result = ModelExport.ToSafeTensors(source, target);
            console.MarkupLineInterpolated(
                $"wrote {result.Tensors} tensors ({result.Bytes / 1e6:0.0} MB) of {Path.GetFileName(source)} (step {result.Source.Step}) → {result.Path}");
            console.MarkupLine("tensor names: bench/pytorch_bench.py's VAE (docs/export.md)");
            return ExitCodes.Ok;
        });
        return command;
    }
}
