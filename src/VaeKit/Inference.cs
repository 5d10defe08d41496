using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Evaluation;
using VaeKit.Models;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit;

/// <summary>
/// A trained model loaded from a run directory, in evaluation mode, for <c>vae sample</c>, <c>reconstruct</c> and
/// <c>interpolate</c>. All outputs are (N, C, s, s) float in [0, 1] on the CPU.
/// </summary>
public sealed class TrainedModel : IDisposable
{
    private TrainedModel(RunDirectory run, CheckpointHeader header, VaeModel model, Device device, string checkpoint)
    {
        Run = run;
        Header = header;
        Model = model;
        Device = device;
        CheckpointPath = checkpoint;
    }

    /// <summary>The run the checkpoint belongs to.</summary>
    public RunDirectory Run { get; }
    /// <summary>The loaded checkpoint's header (step, epoch, run configuration).</summary>
    public CheckpointHeader Header { get; }
    /// <summary>The run's configuration as stored in the checkpoint.</summary>
    public RunConfig Config => Header.Config;
    /// <summary>The model, in evaluation mode, on <see cref="Device"/>.</summary>
    public VaeModel Model { get; }
    /// <summary>The device the model lives on.</summary>
    public Device Device { get; }
    /// <summary>Path of the loaded checkpoint file.</summary>
    public string CheckpointPath { get; }

    /// <param name="which">"best" (falls back to "last"), "last", or a checkpoint path.</param>
    public static TrainedModel Load(string runDirectory, string which = "best", string device = "auto")
    {
        var run = new RunDirectory(runDirectory);
        var path = run.Checkpoint(which);
        var dev = TorchRuntime.ResolveDevice(device);
        var (header, model) = Checkpoint.LoadModel(path);
        model.to(dev);
        model.eval();
        return new TrainedModel(run, header, model, dev, path);
    }

    /// <summary>Decodes n draws from the prior named <paramref name="prior"/> (<see cref="Prior"/>; standard = the
    /// family's own, N(0, T²·I) for the Gaussian families) at <paramref name="temperature"/>, from a generator seeded by
    /// <paramref name="seed"/>.</summary>
    public Tensor Sample(int n, double temperature, int seed, string prior = Priors.PriorKinds.Standard)
    {
        if (n <= 0) throw new BadInputException($"{Settings.Pictures.SampleCount} must be positive (got {n}).");
        if (!(temperature >= 0)) throw new BadInputException($"{Settings.Pictures.Temperature} must be 0 or more (got {temperature}).");
        Require(ModelOperation.Sample);
        using var fitted = Prior(prior);
        return Decode(SampleCodes(fitted, n, temperature, seed));
    }

    /// <summary>n codes (n, z) on the CPU from <paramref name="prior"/>, from a generator seeded by <paramref name="seed"/>.</summary>
    public Tensor SampleCodes(Priors.IFittedPrior prior, long n, double temperature, int seed)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        return prior.Sample(n, temperature, generator, Device).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The prior named <paramref name="name"/> for this checkpoint: standard (the family's own), or one fitted by
    /// <c>vae prior</c> and stored in RUN/priors/NAME/. The one place a prior name becomes a sampler; refused
    /// (<see cref="BadInputException"/>) when it does not apply to the family, was not fitted, or was fitted to another checkpoint.
    /// </summary>
    public Priors.IFittedPrior Prior(string name = Priors.PriorKinds.Standard) => Priors.PriorKinds.Load(this, name);

    /// <summary>Codes (posterior modes) of images (N, C, s, s) in [0, 1] on any device → (N, z) on the CPU.</summary>
    public Tensor Encode(Tensor images)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Model.Encode(images.to(Device)).Mode.cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Codes (N, z) on any device → images (N, C, s, s) in [0, 1] on the CPU.</summary>
    public Tensor Decode(Tensor codes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Model.Decode(codes.to(ScalarType.Float32).to(Device)).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>The <see cref="Evaluator"/>'s measurements on <paramref name="images"/>.</summary>
    public EvalReport Evaluate(DecodedImages images, EvalOptions? options = null) =>
        Evaluator.Evaluate(Model, images, Device, options ?? new EvalOptions());

    /// <summary>Throws <see cref="BadInputException"/> when the model's family cannot do <paramref name="operation"/>.</summary>
    public void Require(ModelOperation operation)
    {
        if (Model.Unsupported(operation) is string why) throw new BadInputException(why);
    }

    /// <summary>The first n images of a set and their reconstructions (decoded from the posterior mean).</summary>
    public (Tensor Originals, Tensor Reconstructions) Reconstruct(DecodedImages images, int n)
    {
        if (n <= 0) throw new BadInputException($"{Settings.Pictures.ReconstructCount} must be positive (got {n}).");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, 0, Math.Min(n, images.Count)), Device);
        var reconstruction = Model.call(x).Reconstruction;
        return (x.cpu().MoveToOuterDisposeScope(), reconstruction.cpu().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Rows of a walk in latent space between the codes (posterior means) of image pairs:
    /// row r goes from image 2r to image 2r+1 in <paramref name="steps"/> decoded points, endpoints included.
    /// Linear, or spherical (<paramref name="spherical"/>, Shoemake 1985; White 2016 "Sampling generative networks"):
    /// a straight line between two typical draws of N(0, I) passes near the origin, where the prior has few codes
    /// of that norm; slerp keeps the norm in between. Result: (pairs · steps, C, s, s), row by row.
    /// </summary>
    public Tensor Interpolate(DecodedImages images, int pairs, int steps, bool spherical = false)
    {
        if (pairs <= 0 || steps < 2) throw new BadInputException($"{Settings.Pictures.Pairs} must be positive and {Settings.Pictures.InterpolationSteps} at least 2.");
        Require(ModelOperation.Interpolate);
        if (images.Count < 2 * pairs) throw new BadInputException($"Interpolating {pairs} pairs needs {2 * pairs} images; the data has {images.Count}.");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, 0, 2 * pairs), Device);
        var mu = Model.Encode(x).Mode.view(pairs, 2, -1);                        // (P, 2, z)
        var t = linspace(0, 1, steps, device: Device).view(1, steps, 1);       // (1, T, 1)
        var start = mu[.., 0..1, ..];                                          // (P, 1, z)
        var end = mu[.., 1..2, ..];
        var path = spherical ? Slerp(start, end, t) : start + t * (end - start);   // (P, T, z)
        return Model.Decode(path.view(pairs * steps, -1)).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Spherical interpolation: a (P, 1, z), b (P, 1, z), t (1, T, 1) → (P, T, z) =
    /// sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, Ω the angle between a and b; nearly parallel pairs fall back to
    /// the straight line, where slerp tends to it anyway.
    /// </summary>
    public static Tensor Slerp(Tensor a, Tensor b, Tensor t)
    {
        using var scope = NewDisposeScope();
        var cosine = nn.functional.cosine_similarity(a, b, dim: 2).clamp(-1, 1).unsqueeze(2);   // (P, 1, 1)
        var omega = cosine.acos();
        var sine = omega.sin();
        var parallel = sine.abs().lt(1e-4);
        var safe = where(parallel, ones_like(sine), sine);
        var spherical = ((1 - t) * omega).sin() / safe * a + (t * omega).sin() / safe * b;
        var linear = a + t * (b - a);
        return where(parallel, linear, spherical).MoveToOuterDisposeScope();
    }

    /// <summary>Loads the run's data (or other data) decoded at this model's size and channels. Other data is not split
    /// (all of it is Train, unless it has a fixed test split) unless <paramref name="validationFraction"/> says so.</summary>
    public LoadedDataset LoadData(string? source, IProgress<DecodeProgress>? progress = null, CancellationToken cancellationToken = default,
                                  double? validationFraction = null) =>
        DatasetLoader.Load(new DataOptions
        {
            Source = DataSpec.Parse(source ?? Config.Data.Source),
            ImageSize = Config.Model.ImageSize,
            Channels = Config.Model.InChannels,
            ValidationFraction = validationFraction ?? (source is null ? Config.Data.ValidationFraction : 0),
            Seed = DataConfig.SplitSeed,
            CacheDirectory = Config.Data.CacheDirectory,
        }, progress, cancellationToken);

    /// <summary>
    /// The images to show from <paramref name="data"/>: the held-out validation split when it is the run's own data
    /// and large enough, otherwise everything that was loaded.
    /// </summary>
    public static DecodedImages Showcase(LoadedDataset data, bool runData, int needed) =>
        runData && data.Validation.Count >= needed ? data.Validation : data.Train;

    /// <inheritdoc/>
    public void Dispose() => Model.Dispose();
}
