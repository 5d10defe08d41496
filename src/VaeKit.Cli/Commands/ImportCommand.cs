using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Export;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae import --safetensors FILE --out RUNDIR [--preset NAME | --config FILE]</c>: a run directory from a safetensors
/// file (VaeKit's export or the PyTorch twin's state_dict), for <c>vae sample/reconstruct/eval --run</c>.
/// </summary>
internal static class ImportCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var file = new Option<string>("--safetensors") { Description = "safetensors file (from vae export or PyTorch's twin)", Required = true };
        var output = new Option<string>("--out") { Description = "Run directory to create", Required = true }.Sets(Settings.Import.Out);
        var preset = new Option<string?>("--preset") { Description = "Architecture, when the file does not carry VaeKit's config" }.Sets(Settings.Import.Preset);
        var config = new Option<string?>("--config") { Description = "A run's config.json giving the architecture (instead of --preset)" }.Sets(Settings.Import.Config);

        var command = new Command("import", "Create a run directory from a safetensors file, for sample, reconstruct, eval and the rest.")
        {
            file, output, preset, config,
        };
        command.SetAction(r =>
        {
            RunConfig? run = null;
            string outDir = r.GetValue(output)!;
            if (r.GetValue(preset) is not null && r.GetValue(config) is not null)
                throw new BadInputException("Give --preset or --config, not both.");
            if (r.GetValue(preset) is { } p)
                run = new RunConfig { Name = Path.GetFileName(Path.GetFullPath(outDir)), Preset = p, Model = Presets.Get(p), Train = new(), Data = new() };
            else if (r.GetValue(config) is { } c)
                run = ReadConfig(c);
            var result = ModelExport.ImportRun(r.GetValue(file)!, run, outDir);
            console.MarkupLineInterpolated($"imported {result.Tensors} tensors → {result.Checkpoint}");
            console.MarkupLineInterpolated($"use it with: vae sample --run {result.RunDirectory} (or reconstruct, interpolate, traverse, eval)");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static RunConfig ReadConfig(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<RunConfig>(File.ReadAllText(path), Json.Indented)
                   ?? throw new BadInputException($"{path} is empty.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot read {path}: {e.Message}", e);
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{path} is not a VaeKit run config ({e.Message}).", e);
        }
    }
}
