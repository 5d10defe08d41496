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
    /// <summary>A grid key: the run setting it stands for, whether it changes a plain AE, its parser (given how to name
    /// the axis in a message) and its setter.</summary>
    internal sealed record Key(string Name, SettingKey Setting, bool MattersToAe, Func<string, Axis, string> Canonical, Func<RunConfig, string, RunConfig> Apply);

    /// <summary>How messages name an axis being parsed: <c>sweep.grid latent</c>, or the setting that gave it.</summary>
    internal sealed record Axis(string Name, SettingKey From)
    {
        private bool InGrid => From == Settings.Sweep.Grid;

        public SettingText Subject
        {
            get { if (InGrid) return $"{From} {Name}"; return $"{From}"; }
        }

        /// <summary>An example of values for this axis, written as the user would give them.</summary>
        public SettingText Like(string values)
        {
            if (InGrid) return $"{Name}={values}";
            return $"{From.Is(values)}";
        }
    }

    private static readonly Key[] Keys =
    [
        new("kl_weight", Settings.Train.KlWeight, false, Real, (c, v) => c with { Train = c.Train with { KlWeight = D(v) } }),
        new("free_bits", Settings.Train.FreeBits, false, Real, (c, v) => c with { Train = c.Train with { FreeBits = D(v) } }),
        new("kl_schedule", Settings.Train.KlSchedule, false, (v, _) => { KlSchedule.Parse(v); return v; }, (c, v) => c with { Train = c.Train with { KlSchedule = v } }),
        new("model", Settings.Model.Kind, true, Family, (c, v) => c with { Model = c.Model with { Kind = v } }),
        new("latent", Settings.Model.Latent, true, Integer, (c, v) => c with { Model = c.Model with { Latent = I(v) } }),
        new("widths", Settings.Model.Widths, true, Widths, (c, v) => c with { Model = c.Model with { Widths = v.Split('x').Select(I).ToArray() } }),
        new("blocks", Settings.Model.Blocks, true, Integer, (c, v) => c with { Model = c.Model with { Blocks = I(v) } }),
        new("norm", Settings.Model.Norm, true, (v, axis) => v is "batch" or "group" ? v : throw Bad(axis, v, "batch or group"),
            (c, v) => c with { Model = c.Model with { Norm = v == "group" ? NormKind.Group : NormKind.Batch } }),
        new("groups", Settings.Model.Groups, true, Integer, (c, v) => c with { Model = c.Model with { Groups = I(v) } }),
        new("lr", Settings.Train.LearningRate, true, Real, (c, v) => c with { Train = c.Train with { LearningRate = D(v) } }),
        new("batch_size", Settings.Train.BatchSize, true, Integer, (c, v) => c with { Train = c.Train with { BatchSize = I(v) } }),
        new("weight_decay", Settings.Train.WeightDecay, true, Real, (c, v) => c with { Train = c.Train with { WeightDecay = D(v) } }),
        new("warmup", Settings.Train.WarmupSteps, true, Integer, (c, v) => c with { Train = c.Train with { WarmupSteps = I(v) } }),
        new("grad_clip", Settings.Train.GradClip, true, Real, (c, v) => c with { Train = c.Train with { GradClip = D(v) } }),
        new("schedule", Settings.Train.Schedule, true, (v, axis) => v is "cosine" or "constant" ? v : throw Bad(axis, v, "cosine or constant"),
            (c, v) => c with { Train = c.Train with { Schedule = v == "constant" ? LrSchedule.Constant : LrSchedule.Cosine } }),
        new("epochs", Settings.Train.Epochs, true, Integer, (c, v) => c with { Train = c.Train with { Epochs = I(v) } }),
        new("max_steps", Settings.Train.MaxSteps, true, Integer, (c, v) => c with { Train = c.Train with { MaxSteps = I(v) } }),
        new("flip", Settings.Data.Flip, true, (v, axis) => v is "true" or "false" ? v : throw Bad(axis, v, "true or false"),
            (c, v) => c with { Data = c.Data with { Flip = v == "true" } }),
        new("seed", Settings.Train.Seed, true, Integer, (c, v) => c with { Train = c.Train with { Seed = I(v) } }),
        new("adversarial_weight", Settings.Train.AdversarialWeight, true, Real, (c, v) => c with { Train = c.Train with { AdversarialWeight = D(v) } }),
        new("adversarial_start", Settings.Train.AdversarialStart, true, Integer, (c, v) => c with { Train = c.Train with { AdversarialStart = I(v) } }),
        new("adversarial_loss", Settings.Train.AdversarialLoss, true, (v, axis) => AdversarialNames.ParseLoss(v) is not null ? v : throw Bad(axis, v, string.Join(" or ", AdversarialNames.Losses)),
            (c, v) => c with { Train = c.Train with { AdversarialLoss = AdversarialNames.ParseLoss(v)!.Value } }),
        new("disc_lr", Settings.Train.DiscriminatorLearningRate, true, Real, (c, v) => c with { Train = c.Train with { DiscriminatorLearningRate = D(v) } }),
        new("disc_layers", Settings.Train.DiscriminatorLayers, true, Integer, (c, v) => c with { Train = c.Train with { DiscriminatorLayers = I(v) } }),
        new("disc_width", Settings.Train.DiscriminatorWidth, true, Integer, (c, v) => c with { Train = c.Train with { DiscriminatorWidth = I(v) } }),
        new("disc_norm", Settings.Train.DiscriminatorNorm, true, (v, axis) => AdversarialNames.ParseNorm(v) is not null ? v : throw Bad(axis, v, string.Join(", ", AdversarialNames.Norms)),
            (c, v) => c with { Train = c.Train with { DiscriminatorNorm = AdversarialNames.ParseNorm(v)!.Value } }),
        new("feature_matching_weight", Settings.Train.FeatureMatchingWeight, true, Real, (c, v) => c with { Train = c.Train with { FeatureMatchingWeight = D(v) } }),
        new("perceptual_weight", Settings.Train.PerceptualWeight, true, Real, (c, v) => c with { Train = c.Train with { PerceptualWeight = D(v) } }),
    ];

    /// <summary>The prefix of a family-option key: <c>model_option.beta=0.1,0.25</c> varies <c>--model-option beta=…</c>.</summary>
    public const string ModelOptionPrefix = "model_option.";

    /// <summary>Every valid grid key, in the order <c>vae sweep --help</c> lists them (plus model_option.KEY for a family's own).</summary>
    public static IReadOnlyList<string> KeyNames { get; } = Keys.Select(k => k.Name).ToArray();

    /// <summary>The run setting a grid key stands for (e.g. latent → model.latent, model_option.beta → model.options.beta).</summary>
    public static SettingKey SettingOf(string key) => Find(key).Setting;

    /// <summary>The KL settings: an axis over one of them trains only families with a KL term.</summary>
    public static bool IsKlSetting(string key) => key is "kl_weight" or "free_bits" or "kl_schedule";

    /// <summary>Keys whose value changes nothing in a plain AE (the KL settings; family options, which an AE has none of).</summary>
    public static bool MattersToAe(string key) => Find(key).MattersToAe;

    /// <summary>The seed axis is where runs repeat: the summary averages over it.</summary>
    public const string SeedKey = "seed";

    /// <summary>
    /// Parses <c>KEY=V1,V2,…</c> into an axis with canonical values (<c>0.10</c> → <c>0.1</c>). Widths are written with
    /// <c>x</c> between stages: <c>widths=16x32x64,32x64x128</c>. Messages name the axis as <paramref name="from"/>
    /// (default <see cref="Settings.Sweep.Grid"/>) when a shorthand setting gave it (e.g. sweep.kl_weights).
    /// </summary>
    public static SweepAxis ParseAxis(string text, SettingKey? from = null)
    {
        var source = from ?? Settings.Sweep.Grid;
        int eq = text.IndexOf('=');
        if (eq <= 0)
            throw new BadInputException($"{source} '{text}' is not KEY=V1,V2,…; e.g. {Settings.Sweep.Grid.Is("latent=16,32,64")}.");
        string name = text[..eq].Trim().ToLowerInvariant().Replace('-', '_');
        var key = Find(name, source);
        var axis = new Axis(name, source);
        var values = text[(eq + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(v => key.Canonical(v, axis)).ToList();
        if (values.Count == 0) throw new BadInputException($"{axis.Subject} needs at least one value, e.g. {axis.Like(Example(name))}.");
        if (values.Distinct().Count() != values.Count)
            throw new BadInputException($"{axis.Subject} lists {values.GroupBy(v => v).First(g => g.Count() > 1).Key} twice.");
        return new SweepAxis(name, values);
    }

    /// <summary>The configuration <paramref name="settings"/> make of <paramref name="config"/>.</summary>
    public static RunConfig Apply(RunConfig config, IEnumerable<KeyValuePair<string, string>> settings) =>
        settings.Aggregate(config, (c, s) => Find(s.Key).Apply(c, s.Value));

    /// <summary>A directory-name-safe spelling of a value (kl_schedule's ':' becomes '_').</summary>
    internal static string Safe(string value) =>
        new(value.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-' or '+' ? ch : '_').ToArray());

    private static Key Find(string name, SettingKey? from = null)
    {
        if (name.StartsWith(ModelOptionPrefix, StringComparison.Ordinal) && name.Length > ModelOptionPrefix.Length)
        {
            // A family's own setting: the family validates the values when the plan checks every run's config.
            string option = name[ModelOptionPrefix.Length..];
            return new Key(name, SettingKey.ModelOption(option), false, (v, _) => v.Trim(), (c, v) => c with { Model = c.Model.WithOption(option, v) });
        }
        return Keys.FirstOrDefault(k => k.Name == name)
               ?? throw new BadInputException($"{from ?? Settings.Sweep.Grid}: unknown setting '{name}'. Valid keys: {string.Join(", ", Keys.Select(k => k.Name))}, " +
                                              $"or {ModelOptionPrefix}KEY for a family option.");
    }

    /// <summary>A registered model family (ae, vae, sigma-vae, vq-vae, or a user's).</summary>
    private static string Family(string v, Axis axis) =>
        Models.ModelFactory.Registered.ContainsKey(v) ? v : throw Bad(axis, v, "a model family: " + string.Join(", ", Models.ModelFactory.Registered.Keys.Order()));

    private static string Example(string name) => name switch
    {
        "widths" => "16x32x64,32x64x128",
        "model" => "vae,sigma-vae",
        "norm" => "batch,group",
        "schedule" => "cosine,constant",
        "kl_schedule" => "constant,linear-warmup:500",
        "flip" => "false,true",
        "seed" => "0,1,2",
        "adversarial_weight" => "0,0.5",
        "adversarial_loss" => "hinge,non-saturating",
        "disc_norm" => "batch,group",
        "disc_lr" => "0.0001,0.0002",
        "feature_matching_weight" => "0,1",
        _ => "1,2",
    };

    private static double D(string v) => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
    private static int I(string v) => int.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static string Real(string v, Axis axis) =>
        double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
            ? d.ToString("R", CultureInfo.InvariantCulture)
            : throw new BadInputException($"{axis.Subject}: '{v}' is not a number; give a list like {axis.Like(Example(axis.Name))}.");

    private static string Integer(string v, Axis axis) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)
            ? i.ToString(CultureInfo.InvariantCulture)
            : throw new BadInputException($"{axis.Subject}: '{v}' is not a whole number; give a list like {axis.Like(Example(axis.Name))}.");

    private static string Widths(string v, Axis axis)
    {
        var parts = v.Split('x', ':');
        if (parts.Length == 0 || parts.Any(p => !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int w) || w <= 0))
            throw new BadInputException($"{axis.Subject}: '{v}' is not stage widths; write them with x between stages, e.g. {axis.Like(Example("widths"))}.");
        return string.Join('x', parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)));
    }

    private static BadInputException Bad(Axis axis, string v, string allowed) =>
        new($"{axis.Subject}: '{v}' is not {allowed}.");
}
