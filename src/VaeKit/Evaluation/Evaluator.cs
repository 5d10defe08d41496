using System.Text.Json;
using TorchSharp;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>How <see cref="Evaluator"/> measures; every number it prints depends on these, so they go into eval.json.</summary>
public sealed record EvalOptions
{
    /// <summary>Posterior samples per image for the ELBO and the importance-weighted bound (Burda et al. 2016).</summary>
    public int ImportanceSamples { get; init; } = 16;

    /// <summary>
    /// σ² of the Gaussian decoder p(x|z) = N(x̂, σ²·I) under which the likelihood is measured, for models without a
    /// decoder variance of their own (σ-VAE has one: <see cref="VaeModel.DecoderVariance"/>). ½ makes
    /// −log p(x|z) = Σ(x − x̂)² + D/2·log π, so the training loss at kl_weight 1 is exactly −ELBO − D/2·log π.
    /// </summary>
    public double DecoderVariance { get; init; } = 0.5;

    /// <summary>Images per forward pass (the importance samples multiply it).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Seed of the posterior samples, so two evaluations of one model agree.</summary>
    public int Seed { get; init; }

    /// <summary>Evaluate only the first N images; null = all.</summary>
    public int? Limit { get; init; }

    /// <summary>The prior the evaluated samples come from (recorded in the report); standard = the family's own.</summary>
    public string Prior { get; init; } = Priors.PriorKinds.Standard;

    /// <summary>Where the evaluator draws prior samples from: (n, seed) → codes (n, z); null = the model's own prior
    /// (<see cref="VaeModel.SamplePrior"/>). Set from <c>--prior</c> by <c>vae eval</c>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Func<long, int, Tensor>? SampleCodes { get; init; }

    /// <summary>The feature network of the image-space FD: fashion-mnist, faces, inception or a file; null = the one for the data
    /// (<see cref="ImageFrechet.DefaultNetwork"/>). Used by <see cref="Evaluator.EvaluateRun"/>.</summary>
    public string? FdNet { get; init; }

    /// <summary>Images (and prior samples) the FD is measured on: the evaluation count, at most this. 0 = no FD.</summary>
    public int FdImages { get; init; } = ImageFrechet.MaxImages;

    /// <summary>What <see cref="Evaluator.Evaluate"/> measures the FD with; null = no FD (set by <see cref="Evaluator.EvaluateRun"/>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public FdSetup? Fd { get; init; }

    /// <summary>Checks the options; throws <see cref="BadInputException"/> on a bad sample count, decoder variance, batch size or limit.</summary>
    public EvalOptions Validate()
    {
        if (ImportanceSamples < 1) throw new BadInputException($"{Settings.Eval.Samples} must be at least 1 (got {ImportanceSamples}).");
        if (!(DecoderVariance > 0) || double.IsInfinity(DecoderVariance)) throw new BadInputException($"{Settings.Eval.DecoderVariance} must be positive (got {DecoderVariance}).");
        if (BatchSize < 1) throw new BadInputException($"{Settings.Eval.BatchSize} must be positive (got {BatchSize}).");
        if (Limit is < 1) throw new BadInputException($"{Settings.Eval.Limit} must be positive (got {Limit}).");
        if (FdImages is < 0 or > ImageFrechet.MaxImages) throw new BadInputException($"{Settings.Eval.FdImages} must be between 0 and {ImageFrechet.MaxImages} (got {FdImages}).");
        return this;
    }
}

/// <summary>
/// How <see cref="Evaluator.Evaluate"/> measures the image-space FD: the feature network (the caller's to dispose),
/// a disjoint set of real images for the floor (null = no floor), and what identifies the evaluated images for the
/// cache of their feature statistics (null identity or directory = not cached).
/// </summary>
public sealed record FdSetup(IFeatureExtractor Network, DecodedImages? Floor = null, string? Identity = null, string? CacheDirectory = null, string? Note = null);

/// <summary>
/// What <c>vae eval</c> measures, written as <c>runs/NAME/eval.json</c>. Reconstruction numbers decode the posterior
/// mean. Likelihood numbers (VAE only) are per image in nats and, divided by D·ln 2, in bits per dimension
/// (D = pixels × channels); they are densities of [0, 1]-valued pixels under a Gaussian decoder, so they can be
/// negative and compare only between models measured with the same decoder variance.
/// </summary>
public sealed record EvalReport
{
    /// <summary>Run directory evaluated; null when the model did not come from a run.</summary>
    public string? Run { get; init; }
    /// <summary>Checkpoint file evaluated.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>Optimizer step of the checkpoint.</summary>
    public long? Step { get; init; }
    /// <summary>Description of the data evaluated (e.g. "fashion-mnist DIR").</summary>
    public string? Data { get; init; }
    /// <summary>Which images: "validation" (the run's held-out split) or "all".</summary>
    public string? Split { get; init; }
    /// <summary>The prior generated samples come from (standard, gmm, autoregressive, …).</summary>
    public string? Prior { get; init; }
    /// <summary>Model kind (ae, vae, sigma-vae, vq-vae, …).</summary>
    public required string Model { get; init; }
    /// <summary>The run's KL weight, for reference.</summary>
    public double? KlWeight { get; init; }
    /// <summary>Images evaluated.</summary>
    public int Images { get; init; }
    /// <summary>D = pixels × channels of one image.</summary>
    public int Dimensions { get; init; }
    /// <summary>Latent size z.</summary>
    public int Latent { get; init; }

    /// <summary>Mean per-pixel squared error on the [0, 1] scale.</summary>
    public double Mse { get; init; }
    /// <summary>dB, from <see cref="Mse"/> (the split's mean), as in training.</summary>
    public double Psnr { get; init; }
    /// <summary>Mean SSIM per image (11×11 Gaussian window, σ = 1.5).</summary>
    public double Ssim { get; init; }

    /// <summary>Mean KL(q(z|x) ‖ N(0, I)) per image, nats (VAE).</summary>
    public double? Kl { get; init; }
    /// <summary>Mean KL of each latent dimension, nats (VAE).</summary>
    public double[]? KlPerDimension { get; init; }
    /// <summary>Dimensions whose code varies over the data with variance above 0.01.</summary>
    public int ActiveUnits { get; init; }
    /// <summary>Variance over the data of each dimension's code (the posterior mean for a VAE).</summary>
    public double[] CodeVariance { get; init; } = [];

    /// <summary>Importance samples k behind <see cref="NllNats"/> (VAE).</summary>
    public int? ImportanceSamples { get; init; }
    /// <summary>Variance of the Gaussian decoder behind the likelihood numbers (VAE).</summary>
    public double? DecoderVariance { get; init; }
    /// <summary>Evidence lower bound per image: E_q[log p(x|z)] − KL, nats (VAE).</summary>
    public double? ElboNats { get; init; }
    /// <summary>Importance-weighted upper bound on −log p(x) with k samples, nats per image (VAE).</summary>
    public double? NllNats { get; init; }
    /// <summary><see cref="ElboNats"/> / (D·ln 2), bits per dimension (VAE).</summary>
    public double? ElboBitsPerDim { get; init; }
    /// <summary><see cref="NllNats"/> / (D·ln 2), bits per dimension (VAE).</summary>
    public double? NllBitsPerDim { get; init; }

    /// <summary>Fréchet distance between N(0, I) and a Gaussian fitted to the codes of the data.</summary>
    public double Frechet { get; init; }
    /// <summary>
    /// VAE: the same distance for the Gaussian fit of the aggregate posterior q(z) = mean_x q(z|x), whose covariance
    /// is Cov(mu) + mean diag(σ²). The means alone leave out the posterior noise, so a collapsed dimension (mu ≈ 0,
    /// σ ≈ 1, a perfect match to the prior) counts as a miss in <see cref="Frechet"/> and as a match here.
    /// </summary>
    public double? FrechetAggregate { get; init; }
    /// <summary>‖mean code‖, one of the things that move the Fréchet distance.</summary>
    public double CodeMeanNorm { get; init; }

    /// <summary>Image-space Fréchet distance (<see cref="ImageFrechet"/>) of <see cref="FdImages"/> samples from the
    /// prior (<see cref="Prior"/>) to as many evaluation images: how good generation is, comparable across families and priors.</summary>
    public double? Fd { get; init; }
    /// <summary>The same FD for the reconstructions (posterior modes decoded) of those evaluation images.</summary>
    public double? FdReconstructions { get; init; }
    /// <summary>The FD of a disjoint set of real images (the other split) to the evaluation images at the same N: what a
    /// perfect generator would score at this N (the FD is biased upwards at small N).</summary>
    public double? FdFloor { get; init; }
    /// <summary>N, the images and samples on each side of <see cref="Fd"/> and <see cref="FdReconstructions"/>.</summary>
    public int? FdImages { get; init; }
    /// <summary>Real images behind <see cref="FdFloor"/> when the other split holds fewer than <see cref="FdImages"/>.</summary>
    public int? FdFloorImages { get; init; }
    /// <summary>The feature network: shipped:fashion-mnist, shipped:faces or a file.</summary>
    public string? FdNet { get; init; }
    /// <summary>A caution about the FD (e.g. the faces network used on other data), or null.</summary>
    public string? FdNote { get; init; }
    /// <summary>Unbiased KID (<see cref="KernelDistance"/>) of the same prior samples to the same evaluation images,
    /// in the same features: the mean over <see cref="KernelDistance.Subsets"/> random subsets of
    /// <see cref="KidSubsetSize"/>. Unlike the FD it is not biased by N; 0 is a perfect generator.</summary>
    public double? Kid { get; init; }
    /// <summary>The standard deviation of <see cref="Kid"/> over its subsets.</summary>
    public double? KidStd { get; init; }
    /// <summary>Images per side in each of <see cref="Kid"/>'s subsets.</summary>
    public int? KidSubsetSize { get; init; }
    /// <summary>Improved precision (<see cref="PrecisionRecall"/>, k = 3) of the same prior samples: the share that
    /// falls inside the evaluation images' manifold (fidelity).</summary>
    public double? Precision { get; init; }
    /// <summary>Improved recall (k = 3): the share of the evaluation images inside the samples' manifold (diversity).</summary>
    public double? Recall { get; init; }
    /// <summary>Seconds of the evaluation spent on the FD (features, prior samples, decodes).</summary>
    public double? FdSeconds { get; init; }

    /// <summary>The objective's named terms (<see cref="MetricNames"/> and the family's own, e.g. a VQ-VAE's code
    /// usage), means over the images, decoded from the posterior mode.</summary>
    public IReadOnlyDictionary<string, double>? Terms { get; init; }

    /// <summary>The family's statistics of all the evaluated codes (<see cref="VaeModel.CodeStatistics"/>), e.g. a
    /// VQ-VAE's code perplexity and dead codes; null when it has none.</summary>
    public IReadOnlyList<CodeStatistic>? CodeStatistics { get; init; }

    /// <summary>Wall time of the evaluation, seconds.</summary>
    public double Seconds { get; init; }

    /// <summary>Writes the report as indented snake_case JSON, atomically.</summary>
    public void Save(string path) => Json.WriteAllTextAtomic(path, JsonSerializer.Serialize(this, Json.Indented) + "\n");

    /// <summary>Reads a report written by <see cref="Save"/>.</summary>
    public static EvalReport Load(string path) =>
        JsonSerializer.Deserialize<EvalReport>(File.ReadAllText(path), Json.Indented) ?? throw new InvalidDataException($"{path} is empty");
}

/// <summary>
/// Measures a trained model on a set of images in evaluation mode without gradients: reconstruction (MSE, PSNR,
/// SSIM), KL per image and per dimension, active units, the ELBO and the importance-weighted NLL bound, and the
/// Fréchet distance of the encoded data to the prior.
/// </summary>
/// <remarks>
/// With z_j = mu + ε_j·σ (j = 1..k) from q(z|x): log w_j = log p(x|z_j) + log p(z_j) − log q(z_j|x);
/// ELBO = mean_j log p(x|z_j) − KL (analytic KL); the IWAE bound log p(x) ≥ log (1/k Σ_j w_j) (Burda, Grosse and
/// Salakhutdinov 2016) gives NLL ≤ −that. log p(x|z) = −D/2·log(2πσ²) − ‖x − x̂‖²/(2σ²).
/// </remarks>
public static class Evaluator
{
    /// <summary>eval.json inside a run directory.</summary>
    public static string ReportPath(RunDirectory run) => Path.Combine(run.Path, "eval.json");

    /// <summary>eval.json for the standard prior, eval-PRIOR.json for another, so each prior's report is kept.</summary>
    public static string ReportPath(RunDirectory run, string prior) =>
        prior == Priors.PriorKinds.Standard ? ReportPath(run) : Path.Combine(run.Path, $"eval-{prior}.json");

    /// <summary>
    /// Loads a run's checkpoint and data, evaluates on its validation split (or on all of <paramref name="data"/>
    /// when given), and writes the report to runs/NAME/eval.json.
    /// </summary>
    public static EvalReport EvaluateRun(string runDirectory, string? data, EvalOptions options, string checkpoint = "best", string device = "auto",
                                         IProgress<DecodeProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        using var trained = TrainedModel.Load(runDirectory, checkpoint, device);
        using var prior = trained.Prior(options.Prior);          // refused before any data is loaded when it does not apply
        if (options.SampleCodes is null && options.Prior != Priors.PriorKinds.Standard)
            options = options with { SampleCodes = (n, seed) => trained.SampleCodes(prior, n, 1.0, seed) };
        using var loaded = trained.LoadData(data, progress, cancellationToken);
        bool validation = data is null && loaded.Validation.Count >= 2;
        var images = validation ? loaded.Validation : loaded.Train;
        var other = validation ? loaded.Train : loaded.Validation;
        string? cache = new DataOptions { Source = DataSpec.Parse(data ?? trained.Config.Data.Source), CacheDirectory = trained.Config.Data.CacheDirectory }.ResolveCacheDirectory();
        using var network = options.FdImages > 0 && options.Fd is null
            ? FeatureExtractors.Load(options.FdNet ?? ImageFrechet.DefaultNetwork(loaded.Description.Kind), trained.Device, cache)
            : null;
        if (network is not null)
        {
            var d = loaded.Description;
            options = options with
            {
                Fd = new FdSetup(network, other.Count >= 2 ? other : null,
                                 $"{d.Kind}/{d.Fingerprint}/{d.ImageSize}/{d.Channels}/{d.ValidationFraction}/{(validation ? "validation" : "all")}",
                                 cache, ImageFrechet.Note(network, d.Kind)),
            };
        }
        var measured = Evaluate(trained.Model, images, trained.Device, options);
        var report = measured with
        {
            Run = trained.Run.Path,
            Checkpoint = trained.CheckpointPath,
            Step = trained.Header.Step,
            Data = loaded.Description.Source,
            Split = validation ? "validation" : "all",
            KlWeight = measured.Kl is not null ? trained.Config.Train.KlWeight : null,   // the answer every KL figure has: a Gaussian posterior was seen
            Prior = options.Prior,
        };
        report.Save(ReportPath(trained.Run, options.Prior));
        return report;
    }

    /// <summary>Measures <paramref name="model"/> (put in evaluation mode) on the first <see cref="EvalOptions.Limit"/> of <paramref name="images"/> on <paramref name="device"/>; the run fields of the report are left null.</summary>
    public static EvalReport Evaluate(VaeModel model, DecodedImages images, Device device, EvalOptions options)
    {
        options.Validate();
        int count = Math.Min(images.Count, options.Limit ?? int.MaxValue);
        if (count < 2) throw new BadInputException($"Evaluation needs at least 2 images; the data has {images.Count}.");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool variational = false;   // set once a Gaussian posterior is seen
        int k = options.ImportanceSamples;
        double variance = model.DecoderVariance ?? options.DecoderVariance;
        int latent = model.Latent;
        long dims = (long)images.Size * images.Size * images.Channels;

        model.eval();
        using var noGrad = no_grad();
        using var noise = new Generator((ulong)options.Seed + 0xE7A1UL);
        var codes = new List<Tensor>();                       // (B, z) float64 on the CPU, one per batch
        var fd = options.Fd;
        int fdCount = fd is null ? 0 : Math.Min(count, options.FdImages);
        var fdClock = new System.Diagnostics.Stopwatch();
        var reconstructionFeatures = new List<Tensor>();     // (b, F) float64 on the CPU, for the first fdCount images
        var terms = new MetricSums();
        double mseSum = 0, ssimSum = 0, klSum = 0, elboSum = 0, nllSum = 0;
        // Per-dimension sums stay on the model's device: one read-back per batch (the scalar sums), not three.
        using var klPerDim = zeros(latent, dtype: ScalarType.Float64, device: device);
        using var posteriorVariance = zeros(latent, dtype: ScalarType.Float64, device: device);    // Σ_x σ²(x) per dimension
        try
        {
            for (int start = 0; start < count; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                int b = Math.Min(options.BatchSize, count - start);
                var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, start, b), device);   // (B, C, s, s)
                var posterior = model.Encode(x);                                              // q(z|x) over (B, z)
                var mu = posterior.Mode;
                var reconstruction = model.Decode(mu);                                        // evaluation decodes the mode
                var objective = model.Objective(new ModelOutput(reconstruction, posterior, mu), x, new LossContext(1.0, Training: false));
                var sums = new List<Tensor>
                {
                    Losses.SquaredErrorPerImage(reconstruction, x).sum() / dims,
                    ImageQuality.Ssim(reconstruction, x).sum(),
                };
                sums.AddRange(objective.Terms.Select(t => t.Value));
                var gaussian = posterior as GaussianPosterior;
                if (gaussian is not null)
                {
                    variational = true;
                    var klDim = gaussian.KlPerDimension();                                    // (B, z)
                    klPerDim.add_(klDim.sum([0]).to_type(ScalarType.Float64));
                    posteriorVariance.add_(gaussian.LogVar.exp().sum([0]).to_type(ScalarType.Float64));
                    var (elbo, nll) = LikelihoodBounds(model, x, gaussian, klDim.sum(1), k, variance, noise);
                    sums.Add(klDim.sum());
                    sums.Add(elbo.sum());
                    sums.Add(nll.sum());
                }
                var host = stack(sums.Select(t => t.to_type(ScalarType.Float64)).ToArray()).cpu().data<double>().ToArray();
                mseSum += host[0];
                ssimSum += host[1];
                int afterTerms = 2 + objective.Terms.Count;
                terms.Add(b, objective.Terms.Select(term => term.Name).ToArray(), host[2..afterTerms]);
                if (gaussian is not null) { klSum += host[afterTerms]; elboSum += host[afterTerms + 1]; nllSum += host[afterTerms + 2]; }
                codes.Add(mu.to_type(ScalarType.Float64).cpu().DetachFromDisposeScope());
                if (start < fdCount)
                {
                    fdClock.Start();
                    var decoded = reconstruction.narrow(0, 0, Math.Min(b, fdCount - start));
                    reconstructionFeatures.Add(ImageFrechet.Features(fd!.Network, (int)decoded.shape[0], (s, n) => decoded.narrow(0, s, n)).DetachFromDisposeScope());
                    fdClock.Stop();
                }
            }
            var frechet = fdCount >= 2 ? MeasureFd(model, images, device, options, fdCount, reconstructionFeatures, fdClock) : null;

            using var all = cat(codes, 0);                                                    // (N, z)
            using var variances = LatentStatistics.CodeVariance(all);
            using var meanCode = all.mean([0]);
            var codeStatistics = model.CodeStatistics(all);
            using var klPerDimHost = klPerDim.cpu();
            using var posteriorVarianceHost = posteriorVariance.cpu();
            double mse = mseSum / count;
            double bitsPerNat = 1 / (dims * Math.Log(2));
            return new EvalReport
            {
                Model = model.Config.Kind,
                Images = count,
                Dimensions = (int)dims,
                Latent = latent,
                Mse = mse,
                Psnr = Losses.Psnr(mse),
                Ssim = ssimSum / count,
                Kl = variational ? klSum / count : null,
                KlPerDimension = variational ? klPerDimHost.data<double>().Select(v => v / count).ToArray() : null,
                ActiveUnits = LatentStatistics.ActiveUnits(all),
                CodeVariance = variances.data<double>().ToArray(),
                ImportanceSamples = variational ? k : null,
                DecoderVariance = variational ? variance : null,
                ElboNats = variational ? elboSum / count : null,
                NllNats = variational ? nllSum / count : null,
                ElboBitsPerDim = variational ? -elboSum / count * bitsPerNat : null,
                NllBitsPerDim = variational ? nllSum / count * bitsPerNat : null,
                Frechet = LatentStatistics.FrechetToStandardNormal(all),
                FrechetAggregate = variational ? AggregateFrechet(all, posteriorVarianceHost / count) : null,
                CodeMeanNorm = meanCode.norm().item<double>(),
                Fd = frechet?.Samples,
                FdReconstructions = frechet?.Reconstructions,
                FdFloor = frechet?.Floor,
                FdImages = frechet is null ? null : fdCount,
                FdFloorImages = frechet?.FloorImages is { } fi && fi != fdCount ? fi : null,
                FdNet = frechet is null ? null : fd!.Network.Source,
                FdNote = frechet is null ? null : fd!.Note,
                Kid = frechet?.Kid.Kid,
                KidStd = frechet?.Kid.Std,
                KidSubsetSize = frechet?.Kid.SubsetSize,
                Precision = frechet?.PrecisionRecall?.Precision,
                Recall = frechet?.PrecisionRecall?.Recall,
                FdSeconds = frechet is null ? null : Math.Round(fdClock.Elapsed.TotalSeconds, 2),
                Terms = terms.Result().Values.Where(kv => MetricNames.IsTerm(kv.Key) && kv.Key != MetricNames.Loss).ToDictionary(),
                CodeStatistics = codeStatistics.Count > 0 ? codeStatistics : null,
                Seconds = clock.Elapsed.TotalSeconds,
            };
        }
        finally
        {
            foreach (var c in codes) c.Dispose();
            foreach (var f in reconstructionFeatures) f.Dispose();
        }
    }

    private sealed record FdFigures(double Samples, double Reconstructions, double? Floor, int? FloorImages,
                                    KernelDistance.Estimate Kid, PrecisionRecall.Result? PrecisionRecall);

    /// <summary>
    /// The FD figures at N = <paramref name="n"/>: prior samples and reconstructions against the first N evaluation
    /// images, and the floor (N real images of the other split against the same); and the samples' KID and
    /// precision/recall against the same N images. The evaluation images' features are cached by
    /// <see cref="FdSetup.Identity"/>; the samples come from <see cref="EvalOptions.SampleCodes"/> (a fitted prior)
    /// or the family's own prior, seeded by <see cref="EvalOptions.Seed"/>, which also draws the KID's subsets.
    /// </summary>
    private static FdFigures MeasureFd(VaeModel model, DecodedImages images, Device device, EvalOptions options, int n,
                                       List<Tensor> reconstructionFeatures, System.Diagnostics.Stopwatch clock)
    {
        clock.Start();
        var fd = options.Fd!;
        string? cache = fd.Identity is null ? null : fd.CacheDirectory;
        using var realFeatures = ImageFrechet.ReferenceFeatures(fd.Network, images, n, device, fd.Identity ?? "", cache);
        using var real = FeatureStatistics.Of(realFeatures);
        using var all = cat(reconstructionFeatures, 0);
        using var reconstructions = FeatureStatistics.Of(all);

        using var generator = new Generator((ulong)options.Seed + 0xFD5EEDUL);
        using var codes = options.SampleCodes is { } sample ? sample(n, options.Seed) : model.SamplePrior(n, 1.0, generator, device).cpu();   // (N, z)
        using var sampleFeatures = ImageFrechet.Features(fd.Network, n, (s, b) => model.Decode(codes.narrow(0, s, b).to(ScalarType.Float32).to(device)));
        using var samples = FeatureStatistics.Of(sampleFeatures);

        double? floor = null;
        int? floorImages = null;
        if (fd.Floor is { Count: >= 2 } other)
        {
            floorImages = Math.Min(n, other.Count);
            using var floorFeatures = ImageFrechet.ReferenceFeatures(fd.Network, other, floorImages.Value, device, (fd.Identity ?? "") + "/floor", cache);
            using var floorStatistics = FeatureStatistics.Of(floorFeatures);
            floor = FrechetDistance.Between(floorStatistics, real);
        }
        var figures = new FdFigures(FrechetDistance.Between(samples, real), FrechetDistance.Between(reconstructions, real), floor, floorImages,
                                    KernelDistance.Between(sampleFeatures, realFeatures, seed: options.Seed),
                                    n > PrecisionRecall.Neighbours ? PrecisionRecall.Between(realFeatures, sampleFeatures) : null);
        clock.Stop();
        return figures;
    }

    private static double AggregateFrechet(Tensor codes, Tensor meanPosteriorVariance)
    {
        using var scope = NewDisposeScope();
        var mean = codes.mean([0]);
        var centred = codes - mean;
        var covariance = centred.T.matmul(centred) / (codes.shape[0] - 1) + meanPosteriorVariance.diag();
        return LatentStatistics.FrechetToStandardNormal(mean, covariance);
    }

    /// <summary>
    /// x (B, C, s, s), mu and logvar (B, z), kl (B) → per image the ELBO and the k-sample importance-weighted NLL
    /// bound, both in nats, (B) each.
    /// </summary>
    internal static (Tensor Elbo, Tensor Nll) LikelihoodBounds(VaeModel model, Tensor x, GaussianPosterior posterior, Tensor kl,
                                                               int k, double decoderVariance, Generator noise)
    {
        var (mu, logVar) = (posterior.Mu, posterior.LogVar);
        long b = x.shape[0], latent = mu.shape[1];
        // TorchSharp's generators are CPU-only: draw there, then move (evaluation, not a hot path).
        var eps = randn([k, b, latent], dtype: mu.dtype, generator: noise).to(mu.device);        // (k, B, z)
        var z = mu + eps * (0.5 * logVar).exp();                                                 // (k, B, z)
        var decoded = model.Decode(z.view(k * b, latent));                                       // (k·B, C, s, s)
        var repeated = x.unsqueeze(0).expand(k, -1, -1, -1, -1).reshape(decoded.shape);
        var logPx = model.LogLikelihood(decoded, repeated, decoderVariance).view(k, b);          // (k, B) float64
        double logTwoPi = Math.Log(2 * Math.PI);
        var logPz = (-0.5 * (z.square() + logTwoPi)).sum(2).to_type(ScalarType.Float64);         // (k, B) under N(0, I)
        var logQz = (-0.5 * (eps.square() + logTwoPi + logVar)).sum(2).to_type(ScalarType.Float64); // (k, B) under q(z|x)
        var logW = logPx + logPz - logQz;                                                        // (k, B)
        var elbo = logPx.mean([0]) - kl.to_type(ScalarType.Float64);
        var nll = -(logW.logsumexp(0) - Math.Log(k));
        return (elbo, nll);
    }
}
