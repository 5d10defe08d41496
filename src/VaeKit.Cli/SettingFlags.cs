using System.Text.RegularExpressions;

namespace VaeKit.Cli;

/// <summary>
/// The library names settings by their place in config.json (<c>train.learning_rate</c>); the command line speaks in
/// flags (<c>--lr</c>). Messages from the library pass through <see cref="ToFlags"/> before a user sees them.
/// </summary>
internal static partial class SettingFlags
{
    private static readonly Dictionary<string, string> Flags = new(StringComparer.Ordinal)
    {
        ["train.epochs"] = "--epochs", ["train.batch_size"] = "--batch-size", ["train.learning_rate"] = "--lr",
        ["train.kl_weight"] = "--kl-weight", ["train.kl_schedule"] = "--kl-schedule", ["train.free_bits"] = "--free-bits",
        ["train.weight_decay"] = "--weight-decay", ["train.warmup_steps"] = "--warmup", ["train.grad_clip"] = "--grad-clip",
        ["train.max_steps"] = "--max-steps", ["train.log_every"] = "--log-every", ["train.seed"] = "--seed",
        ["data.source"] = "--data", ["data.channels"] = "--channels", ["data.validation_fraction"] = "--val-fraction",
        ["runtime.threads"] = "--threads", ["runtime.device"] = "--device", ["runtime.precision"] = "--precision",
        ["model.kind"] = "--model", ["model.widths"] = "--widths", ["model.blocks"] = "--blocks", ["model.latent"] = "--latent",
        ["model.image_size"] = "--image-size", ["model.groups"] = "--groups", ["model.norm"] = "--norm",
        ["model.options"] = "--model-option",
        ["run.name"] = "--name", ["run.runs_directory"] = "--runs-dir",
        ["resume.run_directory"] = "--resume", ["resume.allow_data_change"] = "--allow-data-change", ["resume.from"] = "--resume-from",
        ["sample.n"] = "--n", ["sample.temperature"] = "--temperature", ["reconstruct.n"] = "--n",
        ["interpolate.pairs"] = "--pairs", ["interpolate.steps"] = "--steps",
        ["traverse.dims"] = "--dims", ["traverse.steps"] = "--steps", ["traverse.image"] = "--image",
    };

    /// <summary>The flag of a setting key (train.learning_rate → --lr).</summary>
    public static string FlagOf(string key) =>
        Flags.TryGetValue(key, out var flag) ? flag : throw new ArgumentException($"No flag sets {key}.", nameof(key));

    /// <summary>Every known setting name in <paramref name="message"/> replaced by its flag; a family option
    /// <c>model.options.KEY</c> becomes <c>--model-option KEY</c>.</summary>
    public static string ToFlags(string message) =>
        SettingName().Replace(message, m =>
            m.Value.StartsWith(FamilyOption, StringComparison.Ordinal) ? "--model-option " + m.Value[FamilyOption.Length..]
            : Flags.TryGetValue(m.Value, out var flag) ? flag : m.Value);

    private const string FamilyOption = "model.options.";

    [GeneratedRegex(@"\b(?:model\.options\.[a-z_0-9]+|(?:train|data|runtime|model|run|resume|sample|reconstruct|interpolate|traverse)\.[a-z_]+)\b")]
    private static partial Regex SettingName();
}
