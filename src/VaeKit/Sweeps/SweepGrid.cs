using System.Globalization;
using VaeKit.Config;

namespace VaeKit.Sweeps;

/// <summary>One axis of a grid sweep: a <c>vae train</c> setting and the values it takes (canonical text, in order).</summary>
public sealed record SweepAxis(string Key, IReadOnlyList<string> Values);

/// <summary>
/// The settings a grid sweep can vary (<c>--grid KEY=V1,V2,…</c>), each mapped to the field of <see cref="RunConfig"/>
/// that <c>vae train</c>'s flag of the same name sets. Hardware (device, threads, precision), the data and the
/// validation split are not among them: runs of one sweep are measured on the same images.
/// </summary>
public static class SweepGrid
{
    /// <summary>A grid key: the train flag it stands for, whether it changes a plain AE, its parser and setter.</summary>
    internal sealed record Key(string Name, string Flag, bool MattersToAe, Func<string, string> Canonical, Func<RunConfig, string, RunConfig> Apply);

    private static readonly Key[] Keys =
    [
        new("kl_weight", "--kl-weight", false, v => Real(v, "kl_weight"), (c, v) => c with { Train = c.Train with { KlWeight = D(v) } }),
        new("free_bits", "--free-bits", false, v => Real(v, "free_bits"), (c, v) => c with { Train = c.Train with { FreeBits = D(v) } }),
        new("kl_schedule", "--kl-schedule", false, v => { Training.KlSchedule.Parse(v); return v; }, (c, v) => c with { Train = c.Train with { KlSchedule = v } }),
        new("model", "--model", true, Family, (c, v) => c with { Model = c.Model with { Kind = v } }),
        new("latent", "--latent", true, v => Integer(v, "latent"), (c, v) => c with { Model = c.Model with { Latent = I(v) } }),
        new("widths", "--widths", true, Widths, (c, v) => c with { Model = c.Model with { Widths = v.Split('x').Select(I).ToArray() } }),
        new("blocks", "--blocks", true, v => Integer(v, "blocks"), (c, v) => c with { Model = c.Model with { Blocks = I(v) } }),
        new("norm", "--norm", true, v => v is "batch" or "group" ? v : throw Bad("norm", v, "batch or group"),
            (c, v) => c with { Model = c.Model with { Norm = v == "group" ? NormKind.Group : NormKind.Batch } }),
        new("groups", "--groups", true, v => Integer(v, "groups"), (c, v) => c with { Model = c.Model with { Groups = I(v) } }),
        new("lr", "--lr", true, v => Real(v, "lr"), (c, v) => c with { Train = c.Train with { LearningRate = D(v) } }),
        new("batch_size", "--batch-size", true, v => Integer(v, "batch_size"), (c, v) => c with { Train = c.Train with { BatchSize = I(v) } }),
        new("weight_decay", "--weight-decay", true, v => Real(v, "weight_decay"), (c, v) => c with { Train = c.Train with { WeightDecay = D(v) } }),
        new("warmup", "--warmup", true, v => Integer(v, "warmup"), (c, v) => c with { Train = c.Train with { WarmupSteps = I(v) } }),
        new("grad_clip", "--grad-clip", true, v => Real(v, "grad_clip"), (c, v) => c with { Train = c.Train with { GradClip = D(v) } }),
        new("schedule", "--schedule", true, v => v is "cosine" or "constant" ? v : throw Bad("schedule", v, "cosine or constant"),
            (c, v) => c with { Train = c.Train with { Schedule = v == "constant" ? LrSchedule.Constant : LrSchedule.Cosine } }),
        new("epochs", "--epochs", true, v => Integer(v, "epochs"), (c, v) => c with { Train = c.Train with { Epochs = I(v) } }),
        new("max_steps", "--max-steps", true, v => Integer(v, "max_steps"), (c, v) => c with { Train = c.Train with { MaxSteps = I(v) } }),
        new("flip", "--flip", true, v => v is "true" or "false" ? v : throw Bad("flip", v, "true or false"),
            (c, v) => c with { Data = c.Data with { Flip = v == "true" } }),
        new("seed", "--seed", true, v => Integer(v, "seed"), (c, v) => c with { Train = c.Train with { Seed = I(v) } }),
    ];

    /// <summary>The prefix of a family-option key: <c>model_option.beta=0.1,0.25</c> varies <c>--model-option beta=…</c>.</summary>
    public const string ModelOptionPrefix = "model_option.";

    /// <summary>Every valid grid key, in the order <c>vae sweep --help</c> lists them (plus model_option.KEY for a family's own).</summary>
    public static IReadOnlyList<string> KeyNames { get; } = Keys.Select(k => k.Name).ToArray();

    /// <summary>The <c>vae train</c> flag a grid key stands for (e.g. latent → --latent).</summary>
    public static string FlagOf(string key) => Find(key).Flag;

    /// <summary>The KL settings: an axis over one of them trains only families with a KL term.</summary>
    public static bool IsKlSetting(string key) => key is "kl_weight" or "free_bits" or "kl_schedule";

    /// <summary>Keys whose value changes nothing in a plain AE (the KL settings; family options, which an AE has none of).</summary>
    public static bool MattersToAe(string key) => Find(key).MattersToAe;

    /// <summary>The seed axis is where runs repeat: the summary averages over it.</summary>
    public const string SeedKey = "seed";

    /// <summary>
    /// Parses <c>KEY=V1,V2,…</c> into an axis with canonical values (<c>0.10</c> → <c>0.1</c>). Widths are written with
    /// <c>x</c> between stages: <c>widths=16x32x64,32x64x128</c>.
    /// </summary>
    public static SweepAxis ParseAxis(string text, string flag = "--grid")
    {
        int eq = text.IndexOf('=');
        if (eq <= 0)
            throw new BadInputException($"{flag} '{text}' is not KEY=V1,V2,…; e.g. --grid latent=16,32,64.");
        string name = text[..eq].Trim().ToLowerInvariant().Replace('-', '_');
        var key = Find(name, flag);
        List<string> values;
        try
        {
            values = text[(eq + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(v => key.Canonical(v)).ToList();
        }
        catch (BadInputException e) when (flag != "--grid")
        {
            throw new BadInputException(e.Message.Replace($"--grid {name}", flag).Replace($"{name}=", $"{flag} "), e);
        }
        if (values.Count == 0) throw new BadInputException($"{flag} {name}= needs at least one value, e.g. {name}={Example(name)}.");
        if (values.Distinct().Count() != values.Count)
            throw new BadInputException($"{flag} {name} lists {values.GroupBy(v => v).First(g => g.Count() > 1).Key} twice.");
        return new SweepAxis(name, values);
    }

    /// <summary>The configuration <paramref name="settings"/> make of <paramref name="config"/>.</summary>
    public static RunConfig Apply(RunConfig config, IEnumerable<KeyValuePair<string, string>> settings) =>
        settings.Aggregate(config, (c, s) => Find(s.Key).Apply(c, s.Value));

    /// <summary>A directory-name-safe spelling of a value (kl_schedule's ':' becomes '_').</summary>
    internal static string Safe(string value) =>
        new(value.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-' or '+' ? ch : '_').ToArray());

    private static Key Find(string name, string flag = "--grid")
    {
        if (name.StartsWith(ModelOptionPrefix, StringComparison.Ordinal) && name.Length > ModelOptionPrefix.Length)
        {
            // A family's own setting: the family validates the values when the plan checks every run's config.
            string option = name[ModelOptionPrefix.Length..];
            return new Key(name, "--model-option " + option, false, v => v.Trim(), (c, v) => c with { Model = c.Model.WithOption(option, v) });
        }
        return Keys.FirstOrDefault(k => k.Name == name)
               ?? throw new BadInputException($"{flag}: unknown setting '{name}'. Valid keys: {string.Join(", ", Keys.Select(k => k.Name))}, " +
                                              $"or {ModelOptionPrefix}KEY for a family option.");
    }

    /// <summary>A registered model family (ae, vae, sigma-vae, vq-vae, or a user's).</summary>
    private static string Family(string v) =>
        Models.ModelFactory.Registered.ContainsKey(v) ? v : throw Bad("model", v, "a model family: " + string.Join(", ", Models.ModelFactory.Registered.Keys.Order()));

    private static string Example(string name) => name switch
    {
        "widths" => "16x32x64,32x64x128", "model" => "vae,sigma-vae", "norm" => "batch,group", "schedule" => "cosine,constant",
        "kl_schedule" => "constant,linear-warmup:500", "flip" => "false,true", "seed" => "0,1,2", _ => "1,2",
    };

    private static double D(string v) => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
    private static int I(string v) => int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static string Real(string v, string key) =>
        double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
            ? d.ToString("R", CultureInfo.InvariantCulture)
            : throw new BadInputException($"--grid {key}: '{v}' is not a number; give a list like {key}={Example(key)}.");

    private static string Integer(string v, string key) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)
            ? i.ToString(CultureInfo.InvariantCulture)
            : throw new BadInputException($"--grid {key}: '{v}' is not a whole number; give a list like {key}={Example(key)}.");

    private static string Widths(string v)
    {
        var parts = v.Split('x', ':');
        if (parts.Length == 0 || parts.Any(p => !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int w) || w <= 0))
            throw new BadInputException($"--grid widths: '{v}' is not stage widths; write them with x between stages, e.g. widths=16x32x64,32x64x128.");
        return string.Join('x', parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)));
    }

    private static BadInputException Bad(string key, string v, string allowed) =>
        new($"--grid {key}: '{v}' is not {allowed}.");
}
