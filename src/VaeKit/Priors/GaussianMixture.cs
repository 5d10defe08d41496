using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>
/// A full-covariance Gaussian mixture p(z) = Σ_k π_k N(z; μ_k, Σ_k), fitted by EM (Dempster, Laird and Rubin 1977)
/// from a k-means++ start (Arthur and Vassilvitskii 2007). All arithmetic in float64 on the CPU, through libtorch
/// (Cholesky factors, triangular solves, logsumexp).
/// </summary>
public sealed class GaussianMixture : IDisposable
{
    private GaussianMixture(Tensor weights, Tensor means, Tensor covariances)
    {
        Weights = weights.DetachFromDisposeScope();
        Means = means.DetachFromDisposeScope();
        Covariances = covariances.DetachFromDisposeScope();
        using var scope = NewDisposeScope();
        Cholesky = linalg.cholesky(Covariances).DetachFromDisposeScope();       // (K, D, D) lower
    }

    /// <summary>π (K) float64, summing to 1.</summary>
    public Tensor Weights { get; }
    /// <summary>μ (K, D) float64.</summary>
    public Tensor Means { get; }
    /// <summary>Σ (K, D, D) float64, regularised to be positive definite.</summary>
    public Tensor Covariances { get; }
    /// <summary>Lower Cholesky factors L (K, D, D) of <see cref="Covariances"/> (L Lᵀ = Σ).</summary>
    public Tensor Cholesky { get; }
    /// <summary>K.</summary>
    public int Components => (int)Weights.shape[0];
    /// <summary>D.</summary>
    public int Dimensions => (int)Means.shape[1];
    /// <summary>EM iterations the fit took.</summary>
    public int Iterations { get; private init; }

    /// <summary>A mixture from its parameters (copied to float64 on the CPU).</summary>
    public static GaussianMixture From(Tensor weights, Tensor means, Tensor covariances)
    {
        using var scope = NewDisposeScope();
        return new GaussianMixture(weights.to(ScalarType.Float64).cpu().clone(), means.to(ScalarType.Float64).cpu().clone(),
                                   covariances.to(ScalarType.Float64).cpu().clone());
    }

    /// <summary>
    /// Fits K components to <paramref name="x"/> (N, D): k-means++ means drawn from <paramref name="seed"/>, every
    /// covariance the data's, uniform weights; then EM until the mean log-likelihood improves by less than
    /// <paramref name="tolerance"/> or <paramref name="maxIterations"/>. Each covariance gets + εI, ε =
    /// <paramref name="regularisation"/> × the data's mean variance per dimension.
    /// </summary>
    public static GaussianMixture Fit(Tensor x, int components, int seed, int maxIterations = 200, double tolerance = 1e-6, double regularisation = 1e-6,
                                      CancellationToken cancellationToken = default)
    {
        if (components < 1) throw new BadInputException($"{Settings.Prior.Components} must be 1 or more (got {components}).");
        if (x.shape[0] < components)
            throw new BadInputException($"A {components}-component mixture needs at least {components} training codes; the run has {x.shape[0]}.");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        var data = x.to(ScalarType.Float64).cpu();                                        // (N, D)
        long n = data.shape[0], d = data.shape[1];
        var centred = data - data.mean([0], keepdim: true);
        var covariance = centred.t().matmul(centred) / n;                                  // (D, D)
        double epsilon = regularisation * Math.Max(covariance.diagonal().mean().item<double>(), 1e-12);
        var ridge = eye(d, dtype: ScalarType.Float64) * epsilon;                           // (D, D)

        var means = KMeansPlusPlus(data, components, generator);                          // (K, D)
        var covariances = (covariance + ridge).unsqueeze(0).expand(components, -1, -1).clone();   // (K, D, D)
        var weights = full(components, 1.0 / components, dtype: ScalarType.Float64);     // (K)
        double previous = double.NegativeInfinity;
        int iteration = 0;
        while (iteration < maxIterations)
        {
            using var step = NewDisposeScope();
            cancellationToken.ThrowIfCancellationRequested();
            iteration++;
            // E step: responsibilities r (K, N) from log π_k + log N(x; μ_k, Σ_k).
            var joint = LogJoint(data, weights, means, linalg.cholesky(covariances));      // (K, N)
            var total = joint.logsumexp(0);                                                // (N)
            double meanLogLikelihood = total.mean().item<double>();
            var r = (joint - total.unsqueeze(0)).exp();                                    // (K, N)
            // M step.
            var counts = r.sum(1) + 1e-10;                                                 // (K)
            var newMeans = r.matmul(data) / counts.unsqueeze(1);                           // (K, D)
            var diff = data.unsqueeze(0) - newMeans.unsqueeze(1);                          // (K, N, D)
            var newCovariances = (r.unsqueeze(2) * diff).transpose(1, 2).matmul(diff) / counts.view(-1, 1, 1) + ridge;   // (K, D, D)
            means.copy_(newMeans);
            covariances.copy_(newCovariances);
            weights.copy_(counts / counts.sum());
            if (meanLogLikelihood - previous < tolerance) break;
            previous = meanLogLikelihood;
        }
        return new GaussianMixture(weights.MoveToOuterDisposeScope(), means.MoveToOuterDisposeScope(), covariances.MoveToOuterDisposeScope())
        {
            Iterations = iteration,
        };
    }

    /// <summary>k-means++ seeding: the first mean a uniform pick, each next one a pick with probability ∝ the squared
    /// distance to the nearest mean so far. x (N, D) → (K, D).</summary>
    private static Tensor KMeansPlusPlus(Tensor x, int k, Generator generator)
    {
        long n = x.shape[0];
        var picks = new List<long> { multinomial(ones(n, dtype: ScalarType.Float64), 1, generator: generator).item<long>() };
        var nearest = (x - x[picks[0]].unsqueeze(0)).square().sum(1);                     // (N) squared distance
        while (picks.Count < k)
        {
            var weights = nearest.sum().item<double>() > 0 ? nearest : ones(n, dtype: ScalarType.Float64);
            long next = multinomial(weights, 1, generator: generator).item<long>();
            picks.Add(next);
            nearest = minimum(nearest, (x - x[next].unsqueeze(0)).square().sum(1));
        }
        return x.index_select(0, tensor(picks.ToArray())).clone();
    }

    /// <summary>log π_k + log N(x_n; μ_k, L_k L_kᵀ), x (N, D) → (K, N).</summary>
    private static Tensor LogJoint(Tensor x, Tensor weights, Tensor means, Tensor cholesky)
    {
        long d = x.shape[1];
        var diff = (x.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2);                  // (K, D, N)
        var solved = linalg.solve_triangular(cholesky, diff, upper: false);                // (K, D, N) = L⁻¹ (x − μ)
        var mahalanobis = solved.square().sum(1);                                          // (K, N)
        var logDet = 2 * cholesky.diagonal(dim1: 1, dim2: 2).log().sum(1);                 // (K)
        return weights.log().unsqueeze(1) - 0.5 * (mahalanobis + logDet.unsqueeze(1) + d * Math.Log(2 * Math.PI));
    }

    /// <summary>log p(x) per row, x (N, D) → (N) float64.</summary>
    public Tensor LogLikelihood(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return LogJoint(x.to(ScalarType.Float64).cpu(), Weights, Means, Cholesky).logsumexp(0).MoveToOuterDisposeScope();
    }

    /// <summary>n draws (n, D) float64 on the CPU: a component k ~ π, then μ_k + T·L_k ε with ε ~ N(0, I), so the
    /// covariance is scaled by T²; T = 0 gives the drawn components' means.</summary>
    public Tensor Sample(long n, double temperature, Generator? generator)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var k = multinomial(Weights, n, replacement: true, generator: generator);          // (n)
        var noise = randn([n, Dimensions, 1], dtype: ScalarType.Float64, generator: generator);   // (n, D, 1)
        var spread = Cholesky.index_select(0, k).matmul(noise).squeeze(2);                 // (n, D)
        return (Means.index_select(0, k) + temperature * spread).MoveToOuterDisposeScope();
    }

    /// <summary>The parameters as JSON arrays (weights, means, covariances), exact to the last bit.</summary>
    public JsonObject ToJson() => new()
    {
        ["weights"] = JsonSerializer.SerializeToNode(Weights.data<double>().ToArray()),
        ["means"] = JsonSerializer.SerializeToNode(Means.data<double>().ToArray()),
        ["covariances"] = JsonSerializer.SerializeToNode(Covariances.data<double>().ToArray()),
        ["components"] = Components,
        ["dimensions"] = Dimensions,
    };

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    public static GaussianMixture FromJson(JsonObject json)
    {
        int k = json["components"]!.GetValue<int>(), d = json["dimensions"]!.GetValue<int>();
        double[] Read(string key) => json[key]!.Deserialize<double[]>()!;
        using var scope = NewDisposeScope();
        return From(tensor(Read("weights")), tensor(Read("means")).view(k, d), tensor(Read("covariances")).view(k, d, d));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Weights.Dispose();
        Means.Dispose();
        Covariances.Dispose();
        Cholesky.Dispose();
    }
}

/// <summary>A <see cref="GaussianMixture"/> over a model's flat codes, as an <see cref="IFittedPrior"/>.</summary>
public sealed class GaussianMixturePrior(GaussianMixture mixture) : IFittedPrior
{
    /// <summary>The mixture.</summary>
    public GaussianMixture Mixture { get; } = mixture;

    /// <inheritdoc/>
    public string Name => GaussianMixturePriorKind.KindName;

    /// <inheritdoc/>
    public Tensor Sample(long n, double temperature, Generator? generator, Device device)
    {
        using var scope = NewDisposeScope();
        return Mixture.Sample(n, temperature, generator).to(ScalarType.Float32).to(device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose() => Mixture.Dispose();
}

/// <summary><c>gmm</c>: a full-covariance Gaussian mixture on the posterior means of the training images (ae, vae, sigma-vae).</summary>
public sealed class GaussianMixturePriorKind : IPriorKind
{
    /// <summary>The kind's name.</summary>
    public const string KindName = "gmm";
    /// <summary>Components when --components is not given.</summary>
    public const int DefaultComponents = 10;
    private const string MixtureStem = "gmm";
    private const string MixtureFile = "gmm.json";   // records written before each fit had a file of its own

    /// <inheritdoc/>
    public string Name => KindName;

    /// <inheritdoc/>
    public SettingText? Inapplicable(VaeModel model)
    {
        if (model is not VqVae) return null;
        return $"The gmm prior models continuous codes (ae, vae, sigma-vae); a vq-vae's codes are discrete: use {Settings.Prior.Kind.Is(AutoregressivePriorKind.KindName)}.";
    }

    /// <inheritdoc/>
    public (IFittedPrior Prior, JsonObject Settings, Dictionary<string, double> Figures) Fit(
        TrainedModel model, LoadedDataset data, string directory, PriorFitOptions options, CancellationToken cancellationToken)
    {
        int components = options.Components ?? DefaultComponents;
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var codes = PriorKinds.EncodeModes(model, data.Train, options.BatchSize, cancellationToken: cancellationToken);   // (N, z)
        double encodeSeconds = clock.Elapsed.TotalSeconds;
        GaussianMixture mixture;
        try { mixture = GaussianMixture.Fit(codes, components, options.Seed, cancellationToken: cancellationToken); }
        catch (OperationCanceledException)
        {
            throw new PriorFitInterrupted("stopped during EM; nothing was stored, and the earlier fit, if any, is unchanged");
        }
        double seconds = clock.Elapsed.TotalSeconds;
        var figures = new Dictionary<string, double>
        {
            ["fit_seconds"] = seconds,
            ["encode_seconds"] = encodeSeconds,
            ["em_seconds"] = seconds - encodeSeconds,
            ["iterations"] = mixture.Iterations,
            ["train_codes"] = codes.shape[0],
            ["train_log_likelihood"] = mixture.LogLikelihood(codes).mean().item<double>(),
        };
        if (data.Validation.Count > 0)
        {
            var heldOut = PriorKinds.EncodeModes(model, data.Validation, options.BatchSize);   // (M, z)
            figures["heldout_codes"] = heldOut.shape[0];
            figures["heldout_log_likelihood"] = mixture.LogLikelihood(heldOut).mean().item<double>();
            // The same held-out codes under N(0, I), for comparison with the standard prior.
            double z = heldOut.shape[1];
            figures["heldout_log_likelihood_standard"] = (-0.5 * (heldOut.square().sum(1) + z * Math.Log(2 * Math.PI))).mean().item<double>();
        }
        string file = PriorKinds.NewFitFile(MixtureStem, ".json");
        Json.WriteAllTextAtomic(Path.Combine(directory, file), mixture.ToJson().ToJsonString(Json.Compact) + "\n");
        var settings = new JsonObject { ["components"] = components, ["seed"] = options.Seed, ["covariance"] = "full", [PriorKinds.FileKey] = file };
        return (new GaussianMixturePrior(mixture), settings, figures);
    }

    /// <inheritdoc/>
    public IFittedPrior Load(TrainedModel model, string directory, PriorRecord record)
    {
        string path = PriorKinds.FitFile(directory, record, MixtureFile);
        if (!File.Exists(path)) throw new BadInputException($"{path} is missing: refit with {PriorKinds.Refit(model, KindName)}.");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var mixture = GaussianMixture.FromJson(json);
        if (mixture.Dimensions != model.Model.Latent)
            throw new BadInputException($"{path} models {mixture.Dimensions}-d codes, the model's are {model.Model.Latent}-d: refit with {PriorKinds.Refit(model, KindName)}.");
        return new GaussianMixturePrior(mixture);
    }
}
