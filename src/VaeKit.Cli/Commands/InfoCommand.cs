using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using VaeKit.Config;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae info</c>: the layer table and parameter count of a preset with overrides.</summary>
internal static class InfoCommand
{
    private static readonly Option<int> Channels = new Option<int>("--channels") { Description = "Input channels (3 colour, 1 grey)", DefaultValueFactory = _ => 3 }.Sets(Settings.Data.Channels);
    private static readonly Option<bool> Memory = new("--memory") { Description = "Estimate GPU memory of training (fp32 and bf16) instead of the layer table" };
    private static readonly Option<int> BatchSize = new Option<int>("--batch-size") { Description = "With --memory: images per step", DefaultValueFactory = _ => new TrainConfig().BatchSize }.Sets(Settings.Train.BatchSize);
    private static readonly Option<double> GpuGib = new("--gpu-gib") { Description = "With --memory: GPU size for the largest batch that fits, GiB", DefaultValueFactory = _ => 6 };
    private static readonly Option<int> Images = new("--images") { Description = "With --memory: decoded training images kept on the GPU (63,500 for the anime faces)", DefaultValueFactory = _ => 0 };
    private static readonly Option<bool> AsJson = new("--json") { Description = "Print JSON (config, params, layers) instead of a table" };

    public static Command Create(IAnsiConsole console)
    {
        var models = new ModelOptions();
        var command = new Command("info", "Show a model's layers, output shapes and parameter count.");
        models.AddTo(command);
        command.Options.Add(Channels);
        command.Options.Add(AsJson);
        foreach (var option in new Option[] { Memory, BatchSize, GpuGib, Images })
            command.Options.Add(option);
        command.SetAction(r =>
        {
            var (preset, config) = models.ToConfig(r);
            if (r.GetValue(Memory))
                return PrintMemory(console, preset, config with { InChannels = r.GetValue(Channels) }, r);
            var summary = ModelSummary.Of(config with { InChannels = r.GetValue(Channels) });
            if (r.GetValue(AsJson))
            {
                var node = new JsonObject
                {
                    ["preset"] = preset,
                    ["params"] = summary.Parameters,
                    ["model"] = JsonSerializer.SerializeToNode(summary.Config, Json.Indented),
                    ["layers"] = JsonSerializer.SerializeToNode(summary.Layers, Json.Indented),
                };
                console.Profile.Out.Writer.WriteLine(node.ToJsonString(Json.Indented));
                return ExitCodes.Ok;
            }

            var table = new Table().Border(TableBorder.Simple).AddColumns("layer", "type", "output (C, H, W)", "params");
            table.Columns[3].RightAligned();
            foreach (var row in summary.Layers)
                table.AddRow(Markup.Escape(row.Name), row.Type, string.Join(" × ", row.OutputShape), row.Parameters.ToString("N0"));
            console.MarkupLineInterpolated($"[bold]{preset}[/] {summary.Config.Kind.ToString().ToUpperInvariant()}  {summary.Config.ImageSize}px × {summary.Config.InChannels}ch  widths {string.Join(',', summary.Config.Widths)}  blocks {summary.Config.Blocks}  latent {summary.Config.Latent}  norm {summary.Config.Norm.ToString().ToLowerInvariant()}");
            console.Write(table);
            console.MarkupLineInterpolated($"[bold]{summary.Parameters:N0}[/] parameters");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary><c>vae info --memory</c>: the <see cref="GpuMemory"/> estimate for fp32 and bf16, and the largest batch
    /// that fits a GPU of --gpu-gib.</summary>
    private static int PrintMemory(IAnsiConsole console, string preset, ModelConfig config, ParseResult r)
    {
        int batch = r.GetValue(BatchSize);
        if (batch < 2) throw new BadInputException($"--batch-size must be at least 2 (got {batch}).");
        if (r.GetValue(Images) < 0) throw new BadInputException($"--images must be 0 or more (got {r.GetValue(Images)}).");
        double gib = r.GetValue(GpuGib);
        if (!(gib > 0)) throw new BadInputException($"--gpu-gib must be positive (got {gib}).");
        long budget = (long)(gib * (1L << 30));
        long data = (long)r.GetValue(Images) * config.ImageSize * config.ImageSize * config.InChannels;
        var rows = new[] { Precision.Fp32, Precision.Bf16 }
            .Select(p => (Estimate: GpuMemory.Estimate(config, batch, p, data), Fits: GpuMemory.LargestBatchThatFits(config, p, budget, data)))
            .ToList();
        if (r.GetValue(AsJson))
        {
            var node = new JsonArray(rows.Select(row => (JsonNode)new JsonObject
            {
                ["preset"] = preset, ["precision"] = row.Estimate.Precision.ToString().ToLowerInvariant(), ["batch_size"] = batch,
                ["parameters"] = row.Estimate.Parameters, ["state_bytes"] = row.Estimate.StateBytes,
                ["activation_bytes_per_image"] = row.Estimate.ActivationBytesPerImage, ["data_bytes"] = row.Estimate.DataBytes,
                ["total_bytes"] = row.Estimate.TotalBytes, ["gpu_gib"] = gib, ["largest_batch_that_fits"] = row.Fits,
            }).ToArray());
            console.Profile.Out.Writer.WriteLine(node.ToJsonString(Json.Indented));
            return ExitCodes.Ok;
        }
        static string G(long bytes) => GpuMemory.Gib(bytes) + " GiB";
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("precision", "weights+grads+AdamW", "activations", "images", "estimated total", $"largest batch in {gib:0.##} GiB");
        foreach (var (e, fits) in rows)
            table.AddRow(e.Precision.ToString().ToLowerInvariant(), G(e.StateBytes), G(e.ActivationBytes), G(e.DataBytes), G(e.TotalBytes),
                         fits?.ToString() ?? "none");
        console.MarkupLineInterpolated($"[bold]{preset}[/] ({rows[0].Estimate.Parameters:N0} parameters), batch {batch}: estimated GPU memory of training");
        console.Write(table);
        console.MarkupLineInterpolated($"[grey]total = {GpuMemory.Fudge} × (state + activations + images) + {GpuMemory.ContextBytes >> 20} MiB CUDA context; an estimate, not a measurement[/]");
        return ExitCodes.Ok;
    }
}
