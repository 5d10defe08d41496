using SkiaSharp;
using TorchSharp;
using VaeKit.Data;
using VaeKit.Evaluation;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Serving;

/// <summary>One latent dimension as <c>vae serve</c> shows it: its index, its rank score, and the spread of the data's codes along it.</summary>
/// <param name="Score">Mean KL in nats (VAE) or code variance (AE), as <c>vae traverse</c> ranks; NaN when the run's data was unavailable.</param>
/// <param name="Mean">Mean of the data's codes along this dimension (0 without data).</param>
/// <param name="Std">Standard deviation of the data's codes along this dimension (1 without data).</param>
public sealed record ServedDimension(int Index, double Score, double Mean, double Std);

/// <summary>
/// The one place where <c>vae serve</c> touches a model: everything else in the server sees codes as float arrays and
/// images as PNG (or encoded upload) bytes. Holds one model in memory, in evaluation mode, and runs each call under
/// no_grad inside a dispose scope on the caller's thread (TorchSharp scopes and no_grad are thread-local), one call
/// at a time per model (<see cref="Gate"/>): TorchSharp does not document modules as thread-safe for forward, and
/// libtorch already spreads one forward over the cores, so parallel forwards of one model would only compete.
/// </summary>
/// <remarks>
/// Talks to the model contract (<see cref="VaeModel"/>) through <see cref="TrainedModel"/>: encode → posterior mode,
/// decode, a draw from the family's prior, the family's refusals (<see cref="VaeModel.Unsupported"/>); dimensions are
/// ranked by <see cref="LatentTraversal"/> (mean KL for a Gaussian posterior, code variance otherwise).
/// </remarks>
public sealed class ServedModel : IDisposable
{
    /// <summary>Images of the run's data encoded at start-up to rank dimensions and measure the codes' spread.</summary>
    public const int RankingImages = 512;

    /// <summary>Validation images offered on the page as examples to encode.</summary>
    public const int ExampleCount = 8;

    private readonly TrainedModel _trained;
    private Priors.IFittedPrior _prior;
    private static long _leakedTensors;

    private ServedModel(TrainedModel trained, string label, string scoreName, IReadOnlyList<ServedDimension> ranked, string? rankingNote,
                        IReadOnlyList<byte[]> examples)
    {
        _trained = trained;
        _prior = new Priors.StandardPrior(trained.Model);
        Label = label;
        ScoreName = scoreName;
        Ranked = ranked;
        RankingNote = rankingNote;
        Examples = examples;
    }

    /// <summary>Serialises calls into this model; held only around synchronous tensor work, never across an await.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>A short name for the page (the sweep's label, or the run directory's name).</summary>
    public string Label { get; }

    /// <summary>Full path of the run directory the model came from.</summary>
    public string RunPath => _trained.Run.Path;
    /// <summary>Path of the loaded checkpoint file.</summary>
    public string CheckpointPath => _trained.CheckpointPath;
    /// <summary>Optimizer step of the loaded checkpoint.</summary>
    public long Step => _trained.Header.Step;

    /// <summary>The model family (<see cref="Config.ModelConfig.Kind"/>): ae, vae, sigma-vae, vq-vae or a user family.</summary>
    public string Family => _trained.Config.Model.Kind;

    /// <summary>What <see cref="ServedDimension.Score"/> measures: "kl" (nats, a Gaussian posterior), "variance" (other codes), or "none" (unranked).</summary>
    public string ScoreName { get; }

    /// <summary>Why this model's family cannot do <paramref name="operation"/>, or null when it can.</summary>
    public string? Unsupported(ModelOperation operation) => _trained.Model.Unsupported(operation);

    /// <summary>Latent size z.</summary>
    public int Latent => _trained.Config.Model.Latent;
    /// <summary>Side s of the square images the model takes and makes, pixels.</summary>
    public int ImageSize => _trained.Config.Model.ImageSize;
    /// <summary>Image channels: 1 (grey) or 3 (RGB).</summary>
    public int Channels => _trained.Config.Model.InChannels;

    /// <summary>Every dimension, the highest score first (data order when the data was unavailable).</summary>
    public IReadOnlyList<ServedDimension> Ranked { get; }

    /// <summary>Why the ranking is missing, when it is (null when ranked from the data).</summary>
    public string? RankingNote { get; }

    /// <summary>PNGs of the first validation images, at the model's size.</summary>
    public IReadOnlyList<byte[]> Examples { get; }

    /// <summary>Tensors left alive by calls into any served model since the process started: 0 unless something leaks.</summary>
    public static long LeakedTensors => Interlocked.Read(ref _leakedTensors);

    /// <summary>
    /// Loads a run's checkpoint (<paramref name="checkpoint"/>: best, last or a file), then encodes up to
    /// <see cref="RankingImages"/> of its validation images (its training images when fewer than 64 were held out) to rank the dimensions as <c>vae traverse</c> does.
    /// A run whose data is gone is still served, unranked.
    /// </summary>
    /// <param name="prior">The prior the sample button draws from: standard, or one fitted by <c>vae prior</c> (<see cref="TrainedModel.Prior"/>).</param>
    public static ServedModel Load(string runDirectory, string? label = null, string checkpoint = "best", string device = "auto",
                                   string prior = Priors.PriorKinds.Standard)
    {
        var trained = TrainedModel.Load(runDirectory, checkpoint, device);
        Priors.IFittedPrior? fitted = null;
        try
        {
            fitted = trained.Prior(prior);                 // refused (exit 2) before the data is loaded
            label ??= Path.GetFileName(trained.Run.Path);
            LoadedDataset? data = null;
            string? note = null;
            try
            {
                data = trained.LoadData(null);
            }
            catch (BadInputException e)
            {
                note = $"the run's data is not available ({e.Message.Split('\n')[0]}); dimensions are in index order";
            }
            using (data)
            {
                var images = data is null ? null : TrainedModel.Showcase(data, runData: true, needed: 64);
                if (images is { Count: < 2 })
                {
                    note = "the run's data has fewer than 2 images; dimensions are in index order";
                    images = null;
                }
                if (images is not null && trained.Model.Unsupported(ModelOperation.Traverse) is { } why)
                {
                    note = $"{why.TrimEnd('.')}; dimensions are in index order";
                    images = null;
                }
                var (scoreName, ranked) = images is null ? ("none", Unranked(trained.Config.Model.Latent)) : Rank(trained, images);
                var examples = data is null ? [] : ExamplePngs(TrainedModel.Showcase(data, runData: true, needed: 64));
                return new ServedModel(trained, label, scoreName, ranked, note, examples) { _prior = fitted };
            }
        }
        catch
        {
            fitted?.Dispose();
            trained.Dispose();
            throw;
        }
    }

    private static ServedDimension[] Unranked(int latent) =>
        Enumerable.Range(0, latent).Select(d => new ServedDimension(d, double.NaN, 0, 1)).ToArray();

    /// <summary>Order and scores from <see cref="LatentTraversal"/>; the codes' mean and spread per dimension for the sliders.</summary>
    private static (string ScoreName, ServedDimension[] Ranked) Rank(TrainedModel trained, DecodedImages images)
    {
        int latent = trained.Config.Model.Latent;
        int n = Math.Min(images.Count, RankingImages);
        // One encoding pass: the traversal ranks the dimensions and measures the codes' spread the sliders use.
        using var traversal = LatentTraversal.Run(trained, images, dims: latent, steps: 2, maxImages: n);
        var (mean, std) = (traversal.CodeMean, traversal.CodeStd);
        return (traversal.ScoreName, traversal.Dimensions.Select((d, i) => new ServedDimension(d, traversal.Scores[i], mean[d], std[d] > 0 ? std[d] : 1)).ToArray());
    }

    private static byte[][] ExamplePngs(DecodedImages images)
    {
        int n = Math.Min(ExampleCount, images.Count);
        int size = images.Size, channels = (int)images.Pixels.shape[3];
        var result = new byte[n][];
        using var scope = NewDisposeScope();
        for (int i = 0; i < n; i++)
            result[i] = ServedImages.EncodePng(images.Pixels[i].contiguous().bytes.ToArray(), size, size, channels);
        return result;
    }

    /// <summary>z (length <see cref="Latent"/>) → PNG of the decoded image.</summary>
    public async Task<byte[]> DecodeAsync(float[] z, CancellationToken cancellationToken = default)
    {
        CheckCode(z, nameof(z));
        var pixels = await RunAsync(() =>
        {
            var code = tensor(z, [1, Latent]).to(_trained.Device);               // (1, z)
            return Pixels(_trained.Model.Decode(code), columns: 1);
        }, cancellationToken);
        return pixels.ToPng();
    }

    /// <summary>The prior the samples come from (standard unless served with --prior).</summary>
    public string Prior => _prior.Name;

    /// <summary>A draw from the served prior (<see cref="Prior"/>; standard = the family's own) at <paramref name="temperature"/> (N(0, T²·I) for the Gaussian families), from a generator seeded by <paramref name="seed"/>.</summary>
    public Task<float[]> SampleCodeAsync(double temperature, long seed, CancellationToken cancellationToken = default)
    {
        if (!(temperature >= 0 && temperature <= 10)) throw new BadInputException($"temperature must be in [0, 10] (got {temperature}).");
        _trained.Require(ModelOperation.Sample);
        return RunAsync(() =>
        {
            using var generator = new Generator(unchecked((ulong)seed));
            return _prior.Sample(1, temperature, generator, _trained.Device).cpu().data<float>().ToArray();
        }, cancellationToken);
    }

    /// <summary>
    /// An image (pixels: <see cref="ImageSize"/>² · <see cref="Channels"/> bytes, rows then channels last, as
    /// <see cref="ServedImages.Decode"/> returns) → its code (the posterior's mode: the mean of a Gaussian) and the PNG
    /// of its reconstruction, decoded from that code.
    /// </summary>
    public async Task<(float[] Code, byte[] Reconstruction)> EncodeAsync(byte[] pixels, CancellationToken cancellationToken = default)
    {
        if (pixels.Length != ImageSize * ImageSize * Channels)
            throw new ArgumentException($"expected {ImageSize}×{ImageSize}×{Channels} bytes, got {pixels.Length}", nameof(pixels));
        var (code, reconstruction) = await RunAsync(() =>
        {
            var x = DecodedImages.ToModelInput(tensor(pixels, [1, ImageSize, ImageSize, Channels]), _trained.Device);   // (1, C, s, s)
            var mode = _trained.Model.Encode(x).Mode;                                                               // (1, z)
            return (mode.cpu().data<float>().ToArray(), Pixels(_trained.Model.Decode(mode), columns: 1));
        }, cancellationToken);
        return (code, reconstruction.ToPng());
    }

    /// <summary>
    /// <paramref name="steps"/> decodes from code a to code b, endpoints included, along the straight line or the
    /// great circle (<see cref="TrainedModel.Slerp"/>) → one PNG strip, left to right, 1 px apart.
    /// </summary>
    public async Task<byte[]> InterpolateAsync(float[] a, float[] b, int steps, bool spherical, CancellationToken cancellationToken = default)
    {
        CheckCode(a, nameof(a));
        CheckCode(b, nameof(b));
        if (steps is < 2 or > 32) throw new BadInputException($"steps must be between 2 and 32 (got {steps}).");
        _trained.Require(ModelOperation.Interpolate);
        var pixels = await RunAsync(() =>
        {
            var start = tensor(a, [1, 1, Latent]).to(_trained.Device);                // (1, 1, z)
            var end = tensor(b, [1, 1, Latent]).to(_trained.Device);
            var t = linspace(0, 1, steps, device: _trained.Device).view(1, steps, 1);   // (1, T, 1)
            var path = spherical ? TrainedModel.Slerp(start, end, t) : start + t * (end - start);   // (1, T, z)
            return Pixels(_trained.Model.Decode(path.view(steps, Latent)), columns: steps);
        }, cancellationToken);
        return pixels.ToPng();
    }

    private void CheckCode(float[]? z, string name)
    {
        if (z is null || z.Length != Latent)
            throw new BadInputException($"{name} must be a list of {Latent} numbers for {Label} (got {z?.Length ?? 0}).");
        foreach (var v in z)
            if (!float.IsFinite(v) || Math.Abs(v) > 1e4)
                throw new BadInputException($"{name} must hold finite numbers of magnitude at most 10000 (got {v}).");
    }

    /// <summary>Images (N, C, s, s) in [0, 1] → a PNG of them in one row of <paramref name="columns"/>.</summary>
    private static RgbPixels Pixels(Tensor images, int columns)
    {
        var grid = Imaging.ImageGrid.Make(images, columns, padding: columns > 1 ? 1 : 0);   // (H, W, 3) uint8
        return new RgbPixels(grid.bytes.ToArray(), (int)grid.shape[1], (int)grid.shape[0]);
    }

    /// <summary>
    /// The frame of every call: wait for this model's gate without blocking a thread, then run
    /// <paramref name="work"/> synchronously on the thread that got it, under no_grad in a dispose scope, with no
    /// await inside (scopes and no_grad are thread-local). Tensors still alive afterwards on this thread are counted
    /// in <see cref="LeakedTensors"/>. Results leave as .NET arrays; PNG encoding happens after the gate is released.
    /// </summary>
    private async Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            T result;
            using (NewDisposeScope())
            using (no_grad())
                result = work();
            long left = DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
            if (left > 0) Interlocked.Add(ref _leakedTensors, left);
            return result;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Decoded RGB pixels, rows first, carried out of the scope as a .NET array.</summary>
    private readonly record struct RgbPixels(byte[] Rgb, int Width, int Height)
    {
        public byte[] ToPng() => ServedImages.EncodePng(Rgb, Width, Height, 3);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _prior.Dispose();
        _trained.Dispose();
        Gate.Dispose();
    }
}
