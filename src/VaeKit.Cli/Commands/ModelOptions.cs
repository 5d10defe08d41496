using System.CommandLine;
using System.Globalization;
using VaeKit.Config;

namespace VaeKit.Cli.Commands;

/// <summary>The architecture flags shared by <c>train</c> and <c>info</c>: a preset, then individual overrides.</summary>
internal sealed class ModelOptions
{
    public readonly Option<string> Preset = new Option<string>("--preset")
    {
        Description = $"Architecture preset: {string.Join(", ", Presets.All.Keys)}",
        DefaultValueFactory = _ => "tiny",
    }.Sets(Settings.Model.Preset);
    public readonly Option<string?> Model = new Option<string?>("--model") { Description = $"Model family: {string.Join(", ", Models.ModelFactory.Registered.Keys.Order())} [default: vae]", HelpName = "KIND" }.Sets(Settings.Model.Kind);
    public readonly Option<string?> Widths = new Option<string?>("--widths") { Description = "Stage widths, comma separated, e.g. 32,64,128 [default: from preset]" }.Sets(Settings.Model.Widths);
    public readonly Option<int?> Blocks = new Option<int?>("--blocks") { Description = "Residual blocks per stage [default: from preset]" }.Sets(Settings.Model.Blocks);
    public readonly Option<int?> Latent = new Option<int?>("--latent") { Description = "Latent size z [default: from preset]" }.Sets(Settings.Model.Latent);
    public readonly Option<int?> ImageSize = new Option<int?>("--image-size") { Description = "Image side in pixels [default: from preset]" }.Sets(Settings.Model.ImageSize);
    public readonly Option<string?> Norm = new Option<string?>("--norm") { Description = "Normalisation in the blocks [default: batch]", HelpName = "batch|group" }.AcceptOnlyFromAmong("batch", "group").Sets(Settings.Model.Norm);
    public readonly Option<int?> Groups = new Option<int?>("--groups") { Description = "GroupNorm groups with --norm group [default: 8]" }.Sets(Settings.Model.Groups);
    public readonly Option<string[]> ModelOption = new Option<string[]>("--model-option")
    {
        Description = "A model family's own setting, KEY=VALUE, repeatable (e.g. sigma=learned for sigma-vae, codebook=512 for vq-vae)",
        HelpName = "KEY=VALUE",
        AllowMultipleArgumentsPerToken = false,
    }.Sets(Settings.Model.Options);

    public readonly Option<string?> ModelAssembly = new Option<string?>("--model-assembly")
    {
        Description = "A .NET assembly with your own model families (public IModelFamily types) for --model; recorded in config.json, so every later command finds them",
        HelpName = "DLL",
    }.Sets(Settings.Model.Assembly);

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Preset, Model, ModelAssembly, Widths, Blocks, Latent, ImageSize, Norm, Groups, ModelOption })
            command.Options.Add(option);
    }

    /// <summary>Preset, then each flag given; validated by the caller once the data's channels are known.</summary>
    public (string Preset, ModelConfig Config) ToConfig(ParseResult r)
    {
        string preset = r.GetValue(Preset)!;
        var config = Presets.Get(preset);
        if (r.GetValue(Model) is string kind) config = config with { Kind = kind };
        if (r.GetValue(ModelAssembly) is string assembly) config = config with { Assembly = Path.GetFullPath(assembly) };
        if (r.GetValue(Widths) is string widths) config = config with { Widths = ParseWidths(widths) };
        if (r.GetValue(Blocks) is int blocks) config = config with { Blocks = blocks };
        if (r.GetValue(Latent) is int latent) config = config with { Latent = latent };
        if (r.GetValue(ImageSize) is int size) config = config with { ImageSize = size };
        if (r.GetValue(Norm) is string norm) config = config with { Norm = norm == "group" ? NormKind.Group : NormKind.Batch };
        if (r.GetValue(Groups) is int groups) config = config with { Groups = groups };
        if (r.GetValue(ModelOption) is { Length: > 0 } pairs) config = config with { Options = ParseOptions(pairs) };
        return (preset, config);
    }

    /// <summary>KEY=VALUE pairs → the family options object: numbers and true/false become JSON numbers and booleans,
    /// the rest strings; keys are written as given (snake_case, like config.json).</summary>
    internal static System.Text.Json.Nodes.JsonObject ParseOptions(IEnumerable<string> pairs)
    {
        var options = new System.Text.Json.Nodes.JsonObject();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0 || eq == pair.Length - 1)
                throw new BadInputException($"{Settings.Model.Options} '{pair}' is not KEY=VALUE (e.g. codebook=512).");
            string key = pair[..eq].Trim().Replace('-', '_');
            options[key] = ModelConfig.OptionValue(pair[(eq + 1)..]);
        }
        return options;
    }

    internal static int[] ParseWidths(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var widths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] <= 0)
                throw new BadInputException($"{Settings.Model.Widths} '{text}' is not a list of positive integers like 32,64,128.");
        if (widths.Length == 0) throw new BadInputException($"{Settings.Model.Widths} needs at least one width, like 32,64,128.");
        return widths;
    }
}
