using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Priors;
using static TorchSharp.torch;

namespace MlpVaeExample;

/// <summary>
/// The MLP VAE's own prior, fitted after training: one full-covariance Gaussian on the posterior means of the
/// training images (the aggregate posterior's first two moments), instead of N(0, I). Samples are mu + T·L·ε with
/// L the Cholesky factor of the covariance.
///
/// VaeKit finds it the way it finds the family: a public IPriorKind with a parameterless constructor in the
/// assembly that config.json names, so <c>vae prior --run R --kind aggregate-gaussian</c> and
/// <c>vae sample|eval|serve|report --run R --prior aggregate-gaussian</c> work on this family's runs.
/// </summary>
public sealed class AggregateGaussianPriorKind : IPriorKind
{
    public const string KindName = "aggregate-gaussian";
    private const string File = "gaussian.json";
    private const double Ridge = 1e-6;      // added to the diagonal: a collapsed dimension still factors

    public string Name => KindName;

    public SettingText? Inapplicable(VaeModel model) =>
        model is MlpVae ? null : SettingText.Plain($"{KindName} is the mlp-vae family's prior; this run is a {model.Config.Kind}.");

    public (IFittedPrior Prior, JsonObject Settings, Dictionary<string, double> Figures) Fit(
        TrainedModel model, LoadedDataset data, string directory, PriorFitOptions options, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var codes = PriorKinds.EncodeModes(model, data.Train, options.BatchSize);            // (N, z) float64
        var mean = codes.mean([0]);                                                           // (z)
        var centred = codes - mean;
        var covariance = centred.T.matmul(centred) / (codes.shape[0] - 1);                    // (z, z)
        var factor = linalg.cholesky(covariance + Ridge * eye(covariance.shape[0], dtype: ScalarType.Float64));

        var stored = new Stored(mean.data<double>().ToArray(), factor.data<double>().ToArray());
        Json.WriteAllTextAtomic(Path.Combine(directory, File), JsonSerializer.Serialize(stored));

        // Held-out figure: the mean log-likelihood of the validation codes, under the fit and under N(0, I).
        var held = PriorKinds.EncodeModes(model, data.Validation, options.BatchSize);
        var figures = new Dictionary<string, double>
        {
            ["codes"] = codes.shape[0],
            ["heldout_loglik"] = LogLikelihood(held, mean, factor),
            ["heldout_loglik_standard"] = LogLikelihood(held, zeros_like(mean), eye(mean.shape[0], dtype: ScalarType.Float64)),
        };
        return (new Sampler(stored), new JsonObject { ["ridge"] = Ridge }, figures);
    }

    public IFittedPrior Load(TrainedModel model, string directory, PriorRecord record) =>
        new Sampler(JsonSerializer.Deserialize<Stored>(System.IO.File.ReadAllText(Path.Combine(directory, File)))
                    ?? throw new BadInputException($"{Path.Combine(directory, File)} is empty: refit with vae prior --kind {KindName}."));

    /// <summary>codes (N, z) → the mean of log N(code; mean, L·Lᵀ), nats.</summary>
    private static double LogLikelihood(Tensor codes, Tensor mean, Tensor factor)
    {
        using var scope = NewDisposeScope();
        long z = mean.shape[0];
        var white = linalg.solve_triangular(factor, (codes - mean).T, upper: false);         // (z, N)
        var quadratic = white.pow(2).sum(0);                                                  // (N)
        var logDet = 2 * factor.diagonal().log().sum();
        return (-0.5 * (quadratic + logDet + z * Math.Log(2 * Math.PI))).mean().item<double>();
    }

    private sealed record Stored(double[] Mean, double[] Factor);

    private sealed class Sampler(Stored stored) : IFittedPrior
    {
        private readonly Tensor _mean = tensor(stored.Mean, ScalarType.Float32);                          // (z)
        private readonly Tensor _factor = tensor(stored.Factor, ScalarType.Float32).view(stored.Mean.Length, stored.Mean.Length);   // (z, z)

        public string Name => KindName;

        // ε (n, z) on the CPU (TorchSharp's generators are CPU-only) → mu + T·ε·Lᵀ (n, z) on the device
        public Tensor Sample(long n, double temperature, Generator? generator, Device device)
        {
            using var scope = NewDisposeScope();
            var eps = randn([n, _mean.shape[0]], generator: generator);
            return (_mean + temperature * eps.matmul(_factor.T)).to(device).MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            _mean.Dispose();
            _factor.Dispose();
        }
    }
}
