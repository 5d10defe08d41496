using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Evaluation;
using VaeKit.Models;

namespace VaeKit.Sweeps;

/// <summary>
/// What <c>vae sweep</c> runs: the same experiment (<see cref="Base"/>: data, budget, every setting not on an axis)
/// once per point of the Cartesian product of <see cref="Axes"/>, and optionally as a plain AE.
/// </summary>
public sealed record SweepPlan
{
    /// <summary>Sweep name: the folder under sweeps/.</summary>
    public required string Name { get; init; }
    /// <summary>Every run's configuration but its name and the settings on the axes.</summary>
    public required RunConfig Base { get; init; }
    /// <summary>The grid, in the order given; the last axis varies fastest in <see cref="Entries"/>.</summary>
    public required IReadOnlyList<SweepAxis> Axes { get; init; }
    /// <summary>Adds AE runs: one per combination of the axes that matter to an AE (all but the KL settings).</summary>
    public bool IncludeAe { get; init; }
    /// <summary>How each run is evaluated after training (the same for every run).</summary>
    public EvalOptions Eval { get; init; } = new();

    /// <summary>The axes that are not the seed: the ones the summary, plot and tables are laid out by.</summary>
    public IReadOnlyList<SweepAxis> SettingAxes => Axes.Where(a => a.Key != SweepGrid.SeedKey).ToList();

    /// <summary>The seed axis, when the sweep repeats its runs over seeds.</summary>
    public SweepAxis? SeedAxis => Axes.FirstOrDefault(a => a.Key == SweepGrid.SeedKey);

    /// <summary>The runs in order: the grid's product (last axis fastest), then the AE runs.</summary>
    public IReadOnlyList<SweepEntry> Entries()
    {
        var entries = new List<SweepEntry>();
        foreach (var point in Product(Axes))
            entries.Add(Entry(entries.Count, ModelOf(point), point));
        if (IncludeAe)
            foreach (var point in Product(Axes.Where(a => SweepGrid.MattersToAe(a.Key)).ToList()))
                entries.Add(Entry(entries.Count, "ae", point));
        return entries;
    }

    private string ModelOf(IReadOnlyList<KeyValuePair<string, string>> point) =>
        point.FirstOrDefault(s => s.Key == "model").Value ?? Base.Model.Kind;

    /// <summary>One run: named by its axis values; labelled by them, and by its family unless that is a vae or on an axis.</summary>
    private static SweepEntry Entry(int index, string model, IReadOnlyList<KeyValuePair<string, string>> point)
    {
        bool aeRow = model == ModelKinds.Ae && point.All(s => s.Key != "model");
        var parts = point.Select(s => $"{ShortKey(s.Key)}-{SweepGrid.Safe(s.Value)}");
        string runName = string.Join('_', aeRow ? ["ae", .. parts] : parts);
        return new SweepEntry(index, SweepEntry.LabelOf(model, point), model, point.ToDictionary(s => s.Key, s => s.Value), runName);
    }

    private static string ShortKey(string key) =>
        key == "kl_weight" ? "kl" : key.StartsWith(SweepGrid.ModelOptionPrefix, StringComparison.Ordinal) ? key[SweepGrid.ModelOptionPrefix.Length..] : key;

    private static IEnumerable<IReadOnlyList<KeyValuePair<string, string>>> Product(IReadOnlyList<SweepAxis> axes)
    {
        IEnumerable<IReadOnlyList<KeyValuePair<string, string>>> points = [[]];
        foreach (var axis in axes)
            points = points.SelectMany(p => axis.Values.Select(v => (IReadOnlyList<KeyValuePair<string, string>>)[.. p, new(axis.Key, v)])).ToList();
        return points;
    }

    /// <summary>The configuration of one entry's run.</summary>
    public RunConfig ConfigFor(SweepEntry entry)
    {
        var config = SweepGrid.Apply(Base, entry.Settings) with { Name = entry.RunName };
        return entry.Model == ModelKinds.Ae ? config with { Model = config.Model with { Kind = ModelKinds.Ae, Options = null } } : config;
    }

    /// <summary>Checks the plan (axes, AE rows, unique run names, every run's config); throws <see cref="BadInputException"/> naming the first problem.</summary>
    public SweepPlan Validate()
    {
        if (Axes.Count == 0 && !IncludeAe)
            throw new BadInputException($"A sweep needs at least one axis: {Settings.Sweep.Grid} KEY=V1,V2,… (e.g. {Settings.Sweep.Grid.Is("kl_weight=0.1,1,10")}) or {Settings.Sweep.KlWeights.Is("0.1,1,10")}.");
        if (Axes.Select(a => a.Key).Distinct().Count() != Axes.Count)
            throw new BadInputException($"{Settings.Sweep.Grid} names {Axes.GroupBy(a => a.Key).First(g => g.Count() > 1).Key} twice; give all its values in one {Settings.Sweep.Grid}.");
        bool klAxis = Axes.Any(a => SweepGrid.IsKlSetting(a.Key));
        var models = Axes.FirstOrDefault(a => a.Key == "model")?.Values ?? [Base.Model.Kind];
        if (klAxis && models.Contains(ModelKinds.Ae))
            throw Axes.Any(a => a.Key == "model")
                ? new BadInputException($"model=ae runs have no KL term, so a KL axis would repeat them; drop ae from {Settings.Sweep.Grid} model and add one AE row per setting with {Settings.Sweep.WithAe}.")
                : new BadInputException($"A sweep over a KL setting trains VAEs; add a plain AE row with {Settings.Sweep.WithAe} instead of {Settings.Model.Kind.Is(ModelKinds.Ae)}.");
        if (IncludeAe && Axes.Any(a => a.Key == "model"))
            throw new BadInputException($"{Settings.Sweep.WithAe} and {Settings.Sweep.Grid} model=… both add AE runs; use one of them.");
        var entries = Entries();
        if (entries.Select(e => e.RunName).Distinct().Count() != entries.Count)
            throw new BadInputException("Two runs of this grid would get the same directory name; write the values differently.");
        foreach (var entry in entries)
        {
            var config = ConfigFor(entry);
            config.Train.Validate();
            (config.Model with { InChannels = config.Data.Channels ?? 3 }).Validate();
        }
        Eval.Validate();
        return this;
    }

    /// <summary>The settings that make two invocations the same sweep (hardware and the name are not among them).</summary>
    internal string Identity()
    {
        var identity = new JsonObject();
        // A kl_weight-only sweep keeps the identity earlier versions wrote, so their sweeps can still be continued.
        if (Axes is [{ Key: "kl_weight" } only])
            identity["kl_weights"] = new JsonArray(only.Values.Select(v => JsonValue.Create(double.Parse(v, CultureInfo.InvariantCulture))).ToArray<JsonNode?>());
        else
            identity["axes"] = JsonSerializer.SerializeToNode(Axes, Json.Compact);
        identity["with_ae"] = IncludeAe;
        identity["model"] = JsonSerializer.SerializeToNode(Base.Model, Json.Compact);
        identity["train"] = JsonSerializer.SerializeToNode(Base.Train, Json.Compact);
        identity["data"] = JsonSerializer.SerializeToNode(Base.Data with { Fingerprint = null }, Json.Compact);
        identity["eval"] = JsonSerializer.SerializeToNode(Eval, Json.Compact);
        return identity.ToJsonString(Json.Compact);
    }

    /// <summary><paramref name="w"/> in the invariant round-trip form used in labels and run names.</summary>
    public static string Format(double w) => w.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>
/// One run of a sweep: its position in the plan (the Slurm array index), a label for tables, the model kind, the
/// axis values that make it (key → canonical value), and its directory name under runs/.
/// </summary>
public sealed record SweepEntry(int Index, string Label, string Model, IReadOnlyDictionary<string, string> Settings, string RunName)
{
    /// <summary>
    /// The one labelling rule of runs and summary rows: the axis values (<c>kl_weight=0.1, latent=16</c>), after
    /// "AE" for a plain AE row, after the family name for any family but the vae unless the family is itself an axis;
    /// the family alone (VAE for the vae) when there are no values.
    /// </summary>
    public static string LabelOf(string model, IEnumerable<KeyValuePair<string, string>> settings)
    {
        var values = settings.ToList();
        string text = string.Join(", ", values.Select(s => $"{s.Key}={s.Value}"));
        bool familyAxis = values.Any(s => s.Key == "model");
        if (model == ModelKinds.Ae && !familyAxis) return text.Length > 0 ? $"AE {text}" : "AE";
        if (model == ModelKinds.Vae || familyAxis) return text.Length > 0 ? text : model.ToUpperInvariant();
        return text.Length > 0 ? $"{model} {text}" : model;
    }

    /// <summary>The settings without the seed: runs that differ only by seed share them.</summary>
    public IReadOnlyDictionary<string, string> SettingsWithoutSeed =>
        Settings.Where(s => s.Key != SweepGrid.SeedKey).ToDictionary(s => s.Key, s => s.Value);
}

/// <summary>One line of summary.csv / summary.json: one run.</summary>
public sealed record SweepRow
{
    /// <summary>The run's label in tables and plots.</summary>
    public required string Label { get; init; }
    /// <summary>The run's model kind: ae, vae or the value of the model axis.</summary>
    public required string Model { get; init; }
    /// <summary>The run's kl_weight (VAE), whether or not it is on an axis.</summary>
    public double? KlWeight { get; init; }
    /// <summary>The axis values of this run (key → value).</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();
    /// <summary>Absolute path of the run directory.</summary>
    public required string Run { get; init; }
    /// <summary>completed or diverged.</summary>
    public required string Status { get; init; }
    /// <summary>Optimizer steps the run took.</summary>
    public long Steps { get; init; }
    /// <summary>Training wall time, seconds.</summary>
    public double TrainSeconds { get; init; }
    /// <summary>Validation <see cref="EvalReport.Mse"/>; null when diverged.</summary>
    public double? Mse { get; init; }
    /// <summary>Validation <see cref="EvalReport.Psnr"/>, dB; null when diverged.</summary>
    public double? Psnr { get; init; }
    /// <summary>Validation <see cref="EvalReport.Ssim"/>; null when diverged.</summary>
    public double? Ssim { get; init; }
    /// <summary>Validation <see cref="EvalReport.Kl"/>, nats (VAE).</summary>
    public double? Kl { get; init; }
    /// <summary>Validation <see cref="EvalReport.ActiveUnits"/>.</summary>
    public int? ActiveUnits { get; init; }
    /// <summary>Validation <see cref="EvalReport.ElboNats"/> (VAE).</summary>
    public double? ElboNats { get; init; }
    /// <summary>Validation <see cref="EvalReport.NllNats"/> (VAE).</summary>
    public double? NllNats { get; init; }
    /// <summary>Validation <see cref="EvalReport.NllBitsPerDim"/> (VAE).</summary>
    public double? NllBitsPerDim { get; init; }
    /// <summary>Validation <see cref="EvalReport.Frechet"/>.</summary>
    public double? Frechet { get; init; }
    /// <summary>Validation <see cref="EvalReport.FrechetAggregate"/> (VAE).</summary>
    public double? FrechetAggregate { get; init; }
    /// <summary>Validation <see cref="EvalReport.Fd"/>: image-space FD of standard-prior samples against the evaluation images.</summary>
    public double? Fd { get; init; }
    /// <summary>Validation <see cref="EvalReport.FdReconstructions"/>.</summary>
    public double? FdReconstructions { get; init; }
    /// <summary>Validation <see cref="EvalReport.FdFloor"/>: a perfect generator's score at the same N.</summary>
    public double? FdFloor { get; init; }
    /// <summary>Validation <see cref="EvalReport.Kid"/>: unbiased KID of the same samples.</summary>
    public double? Kid { get; init; }
    /// <summary>Validation <see cref="EvalReport.Precision"/>: the samples' fidelity (k = 3).</summary>
    public double? Precision { get; init; }
    /// <summary>Validation <see cref="EvalReport.Recall"/>: the samples' diversity (k = 3).</summary>
    public double? Recall { get; init; }
    /// <summary><see cref="EvalReport.FdImages"/>: N on each side of the FD.</summary>
    public int? FdImages { get; init; }
    /// <summary><see cref="EvalReport.FdNet"/>: the feature network of the FD (shipped:fashion-mnist, shipped:faces or a file).</summary>
    public string? FdNet { get; init; }
}
