using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>
/// A distribution over a trained model's flat codes, fitted after training (or the family's own,
/// <see cref="StandardPrior"/>): draws n codes (n, z) that <see cref="VaeModel.Decode"/> turns into images.
/// </summary>
public interface IFittedPrior : IDisposable
{
    /// <summary>Its kind's name (<c>standard</c>, <c>gmm</c>, <c>autoregressive</c>, or a user's).</summary>
    string Name { get; }

    /// <summary>n codes (n, z) float32 on <paramref name="device"/> at <paramref name="temperature"/> (1 = the fitted
    /// distribution, 0 = its most likely codes), drawn from <paramref name="generator"/> (a CPU generator; null = the default).</summary>
    Tensor Sample(long n, double temperature, Generator? generator, Device device);
}

/// <summary>The family's own prior (<see cref="VaeModel.SamplePrior"/>: N(0, I), or the VQ-VAE's per-position
/// categorical). The default; never stored.</summary>
public sealed class StandardPrior(VaeModel model) : IFittedPrior
{
    /// <inheritdoc/>
    public string Name => PriorKinds.Standard;

    /// <inheritdoc/>
    public Tensor Sample(long n, double temperature, Generator? generator, Device device) => model.SamplePrior(n, temperature, generator, device);

    /// <inheritdoc/>
    public void Dispose() { }
}

/// <summary>How a prior is fitted; each kind reads the settings it has and ignores the rest.</summary>
public sealed record PriorFitOptions
{
    /// <summary>Mixture components (gmm); null = the kind's default (10).</summary>
    public int? Components { get; init; }
    /// <summary>Optimizer steps (autoregressive); null = the kind's default (2000).</summary>
    public int? MaxSteps { get; init; }
    /// <summary>Seed of the initialisation and of the batches.</summary>
    public int Seed { get; init; }
    /// <summary>Images per encoder pass, and sequences per training step (autoregressive).</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Steps between checkpoints and held-out measurements (autoregressive).</summary>
    public int CheckpointEvery { get; init; } = 250;
    /// <summary>Steps between train rows of metrics.jsonl (autoregressive).</summary>
    public int LogEvery { get; init; } = 25;
    /// <summary>Learning rate (autoregressive).</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Start over even when an unfinished fit of the same checkpoint is stored (autoregressive).</summary>
    public bool Restart { get; init; }
    /// <summary>Told each time a row is logged (autoregressive), e.g. by the CLI or W&amp;B; null = silent.</summary>
    public Action<JsonObject>? OnRow { get; init; }
}

/// <summary>What a stored prior says about itself: RUN/priors/NAME/prior.json.</summary>
public sealed record PriorRecord
{
    /// <summary>The prior kind's name.</summary>
    public required string Kind { get; init; }
    /// <summary>The checkpoint file it was fitted to (informative).</summary>
    public required string Checkpoint { get; init; }
    /// <summary>SHA-256 (hex) of that checkpoint file: a prior is used only with the checkpoint it was fitted to.</summary>
    public required string CheckpointSha256 { get; init; }
    /// <summary>The checkpoint's optimizer step.</summary>
    public long Step { get; init; }
    /// <summary>The kind's settings (components, steps, seed, …).</summary>
    public JsonObject Settings { get; init; } = [];
    /// <summary>Quality figures of the fit (held-out log-likelihood, bits per code, fit seconds, …).</summary>
    public Dictionary<string, double> Figures { get; init; } = [];
    /// <summary>When the fit ended.</summary>
    public DateTimeOffset FittedAt { get; init; }
}

/// <summary>The result of a fit: the prior, ready to sample, and its stored record.</summary>
public sealed record PriorFit(IFittedPrior Prior, PriorRecord Record);

/// <summary>
/// A kind of prior: fits one on a trained model's training codes and loads a stored one. Register a user family's own
/// with <see cref="PriorKinds.Register"/>.
/// </summary>
public interface IPriorKind
{
    /// <summary>The name given to <c>vae prior --kind</c> and <c>--prior</c>; also the folder RUN/priors/NAME/.</summary>
    string Name { get; }

    /// <summary>Why this kind does not apply to <paramref name="model"/> (a message for the user), or null when it does.</summary>
    SettingText? Inapplicable(VaeModel model);

    /// <summary>
    /// Fits on <paramref name="data"/> (the run's training split in Train, held-out in Validation), writing what it
    /// needs into <paramref name="directory"/> (atomically) before returning; the caller writes the record last.
    /// Returns the prior, its settings and figures.
    /// </summary>
    (IFittedPrior Prior, JsonObject Settings, Dictionary<string, double> Figures) Fit(
        TrainedModel model, LoadedDataset data, string directory, PriorFitOptions options, CancellationToken cancellationToken);

    /// <summary>Loads the prior stored in <paramref name="directory"/> for <paramref name="model"/> (its fingerprint already checked).</summary>
    IFittedPrior Load(TrainedModel model, string directory, PriorRecord record);
}

/// <summary>The registry of prior kinds, and storing and finding fitted priors in a run directory.</summary>
public static class PriorKinds
{
    /// <summary>The family's own prior: the default, never stored.</summary>
    public const string Standard = "standard";

    /// <summary>The record's file name inside RUN/priors/NAME/.</summary>
    public const string RecordFile = "prior.json";

    private static readonly Dictionary<string, IPriorKind> Kinds = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();

    static PriorKinds()
    {
        Register(new GaussianMixturePriorKind());
        Register(new AutoregressivePriorKind());
    }

    /// <summary>Adds (or replaces) a kind by its <see cref="IPriorKind.Name"/>.</summary>
    public static void Register(IPriorKind kind)
    {
        if (string.IsNullOrWhiteSpace(kind.Name) || kind.Name == Standard || kind.Name.IndexOfAny(['/', '\\', '.']) >= 0)
            throw new ArgumentException($"'{kind.Name}' cannot name a prior kind.", nameof(kind));
        lock (Gate) Kinds[kind.Name] = kind;
    }

    /// <summary>Every name --prior accepts: standard, then the registered kinds.</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return [Standard, .. Kinds.Keys.Order(StringComparer.Ordinal)]; }
    }

    /// <summary>The kind named <paramref name="name"/>; an unknown name is a <see cref="BadInputException"/>.</summary>
    public static IPriorKind Get(string name)
    {
        lock (Gate)
            if (Kinds.TryGetValue(name, out var kind)) return kind;
        throw new BadInputException($"'{name}' is not a prior: choose one of {string.Join(", ", Names)}.");
    }

    /// <summary>RUN/priors/NAME/.</summary>
    public static string Directory(RunDirectory run, string name) => Path.Combine(run.Path, "priors", name);

    /// <summary>SHA-256 (lower-case hex) of a checkpoint file: the identity a stored prior is tied to.</summary>
    public static string Fingerprint(string checkpointPath)
    {
        using var stream = File.OpenRead(checkpointPath);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The kind named <paramref name="name"/> when it applies to the model, else a <see cref="BadInputException"/>.</summary>
    public static IPriorKind Applicable(TrainedModel model, string name)
    {
        var kind = Get(name);
        if (kind.Inapplicable(model.Model) is { } why) throw new BadInputException(why);
        return kind;
    }

    /// <summary>
    /// Fits a prior of kind <paramref name="name"/> on the run's training images and stores it in RUN/priors/NAME/
    /// (the record last, atomically, with the checkpoint's fingerprint).
    /// </summary>
    public static PriorFit Fit(TrainedModel model, string name, PriorFitOptions options, CancellationToken cancellationToken = default)
    {
        Applicable(model, name);
        LoadedDataset data;
        try { data = model.LoadData(null, cancellationToken: cancellationToken); }
        catch (BadInputException e)
        {
            throw new BadInputException($"The run's data cannot be loaded again ({e.Message.TrimEnd('.')}): fit on other images with {Settings.Prior.Data.Is("SOURCE")}.", e);
        }
        using (data) return Fit(model, name, data, options, cancellationToken);
    }

    /// <summary>
    /// Fits on <paramref name="data"/> instead of the data the run's config names: for a run trained on images held
    /// in memory (<see cref="LoadedDataset.FromImages"/>), which cannot be reloaded from the config. Stored the same way.
    /// </summary>
    public static PriorFit Fit(TrainedModel model, string name, LoadedDataset data, PriorFitOptions options, CancellationToken cancellationToken = default)
    {
        var kind = Applicable(model, name);
        string directory = Directory(model.Run, name);
        System.IO.Directory.CreateDirectory(directory);
        var (prior, settings, figures) = kind.Fit(model, data, directory, options, cancellationToken);
        if (cancellationToken.IsCancellationRequested)
        {
            // Stopped after the kind's last check: the stored record still names the earlier fit, so keep it.
            prior.Dispose();
            throw new PriorFitInterrupted("the fit had finished but was not stored; the earlier fit, if any, is unchanged");
        }
        var record = new PriorRecord
        {
            Kind = name,
            Checkpoint = model.CheckpointPath,
            CheckpointSha256 = Fingerprint(model.CheckpointPath),
            Step = model.Header.Step,
            Settings = settings,
            Figures = figures,
            FittedAt = DateTimeOffset.UtcNow,
        };
        Json.WriteAllTextAtomic(Path.Combine(directory, RecordFile), JsonSerializer.Serialize(record, Json.Indented) + "\n");
        RemoveEarlierFitFiles(directory, settings);
        return new PriorFit(prior, record);
    }

    /// <summary>Key of a record's settings naming the file that holds the fit (<see cref="NewFitFile"/>).</summary>
    public const string FileKey = "file";

    /// <summary>
    /// A fresh name STEM-ID.EXT for the file a kind stores its fit in; the kind records it under <see cref="FileKey"/>.
    /// A refit therefore never overwrites the file the stored record names: until the new record replaces the old
    /// one (atomically, last), the old record and its file stay a consistent pair, whatever stops the refit.
    /// </summary>
    public static string NewFitFile(string stem, string extension) => $"{stem}-{Guid.NewGuid():N}"[..(stem.Length + 13)] + extension;

    /// <summary>The file of <paramref name="record"/>'s fit in <paramref name="directory"/>; records written before
    /// fits had their own file names name none, and mean <paramref name="legacy"/>.</summary>
    public static string FitFile(string directory, PriorRecord record, string legacy) =>
        Path.Combine(directory, record.Settings[FileKey]?.GetValue<string>() ?? legacy);

    /// <summary>Once a new record is stored, the files of earlier fits (same stem, another ID, any extension) go.</summary>
    private static void RemoveEarlierFitFiles(string directory, JsonObject settings)
    {
        if (settings[FileKey]?.GetValue<string>() is not string current) return;
        string id = Path.GetFileNameWithoutExtension(current);
        string stem = id[..id.LastIndexOf('-')];
        foreach (var file in System.IO.Directory.GetFiles(directory, stem + "-*"))
            if (Path.GetFileNameWithoutExtension(file) != id)
                try { File.Delete(file); } catch (IOException) { /* a leftover costs disk, never correctness */ }
    }

    /// <summary>The step that fits prior <paramref name="name"/> to <paramref name="model"/>'s run again (messages advise it).</summary>
    public static Operation Refit(TrainedModel model, string name) =>
        new(Settings.Operations.Prior, Settings.Run.Directory.Is(model.Run.Path), Settings.Prior.Kind.Is(name));

    /// <summary>The stored record of prior <paramref name="name"/> in the model's run, or null when none was fitted.</summary>
    public static PriorRecord? Record(TrainedModel model, string name)
    {
        string path = Path.Combine(Directory(model.Run, name), RecordFile);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<PriorRecord>(File.ReadAllText(path), Json.Indented)
                   ?? throw new BadInputException($"{path} is empty: refit with {Refit(model, name)}.");
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{path} cannot be read ({e.Message}): refit with {Refit(model, name)}.", e);
        }
    }

    /// <summary>
    /// The prior named <paramref name="name"/> for <paramref name="model"/>: <see cref="StandardPrior"/> for standard,
    /// else the stored fit. Refused (<see cref="BadInputException"/>) when the kind does not apply, when none was
    /// fitted, or when the checkpoint changed since the fit.
    /// </summary>
    public static IFittedPrior Load(TrainedModel model, string name)
    {
        if (name == Standard) return new StandardPrior(model.Model);
        var kind = Applicable(model, name);
        var record = Record(model, name)
                     ?? throw new BadInputException($"{model.Run.Path} has no {name} prior yet: fit one with {Refit(model, name)}.");
        if (record.CheckpointSha256 != Fingerprint(model.CheckpointPath))
            throw new BadInputException(
                $"The {name} prior of {model.Run.Path} was fitted to another checkpoint (step {record.Step}) than {Path.GetFileName(model.CheckpointPath)} " +
                $"(step {model.Header.Step}): refit with {Refit(model, name)}.");
        return kind.Load(model, Directory(model.Run, name), record);
    }

    /// <summary>Posterior modes (N, z) float64 on the CPU of <paramref name="images"/> (the first <paramref name="limit"/>),
    /// encoded in evaluation mode without gradients, in batches.</summary>
    public static Tensor EncodeModes(TrainedModel model, DecodedImages images, int batchSize, int? limit = null, CancellationToken cancellationToken = default) =>
        EncodeBatches(model, images, batchSize, limit, x => model.Model.Encode(x).Mode.to(ScalarType.Float64), cancellationToken);

    /// <summary>Code indices (N, L) int64 on the CPU of <paramref name="images"/> under a VQ-VAE, encoded like <see cref="EncodeModes"/>.</summary>
    public static Tensor EncodeIndices(TrainedModel model, DecodedImages images, int batchSize, int? limit = null, CancellationToken cancellationToken = default) =>
        EncodeBatches(model, images, batchSize, limit, x => ((QuantisedPosterior)model.Model.Encode(x)).Indices, cancellationToken);

    private static Tensor EncodeBatches(TrainedModel model, DecodedImages images, int batchSize, int? limit, Func<Tensor, Tensor> encode,
                                        CancellationToken cancellationToken)
    {
        int count = Math.Min(images.Count, limit ?? int.MaxValue);
        if (count < 1) throw new BadInputException("Fitting a prior needs at least one training image.");
        bool wasTraining = model.Model.training;
        model.Model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var parts = new List<Tensor>();
            for (int start = 0; start < count; start += batchSize)
            {
                if (cancellationToken.IsCancellationRequested)
                    throw new PriorFitInterrupted("stopped while encoding the images; nothing was stored, and the earlier fit, if any, is unchanged");
                int b = Math.Min(batchSize, count - start);
                var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, start, b), model.Device);   // (B, C, s, s)
                parts.Add(encode(x).cpu());
            }
            return cat(parts, 0).MoveToOuterDisposeScope();
        }
        finally
        {
            model.Model.train(wasTraining);
        }
    }
}

/// <summary>
/// A prior fit stopped by its cancellation token (Ctrl-C), with <see cref="WhatExists"/>: what is stored now, said
/// for the user (nothing, the earlier fit unchanged, or a resumable state).
/// </summary>
public sealed class PriorFitInterrupted(string whatExists) : OperationCanceledException($"The prior fit was interrupted: {whatExists}.")
{
    /// <summary>What is stored after the interruption, in words.</summary>
    public string WhatExists { get; } = whatExists;
}
