using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae info</c>: the layer table and parameter count of a preset with overrides.</summary>
internal static class InfoCommand
{
    private static readonly Option<int> Channels = new("--channels") { Description = "Input channels (3 colour, 1 grey)", DefaultValueFactory = _ => 3 };
    private static readonly Option<bool> AsJson = new("--json") { Description = "Print JSON (config, params, layers) instead of a table" };

    public static Command Create(IAnsiConsole console)
    {
        var models = new ModelOptions();
        var command = new Command("info", "Show a model's layers, output shapes and parameter count.");
        models.AddTo(command);
        command.Options.Add(Channels);
        command.Options.Add(AsJson);
        command.SetAction(r =>
        {
            var (preset, config) = models.ToConfig(r);
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
}
