using System.Diagnostics;
using System.Globalization;
using System.Text;
using VaeKit.Evaluation;
using VaeKit.Export;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

public class FrechetDistanceTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [Fact]
    public void Distance_of_a_feature_set_to_itself_is_zero()
    {
        using var scope = NewDisposeScope();
        var a = Correlated(1, 1000, 16);
        using var stats = FeatureStatistics.Of(a);
        double trace = stats.Covariance.trace().item<double>();
        Assert.True(FrechetDistance.Between(a, a) < 1e-9 * trace, $"{FrechetDistance.Between(a, a)} vs tr Σ = {trace}");
        Assert.True(FrechetDistance.Between(stats, stats) < 1e-9 * trace);
    }

    [Fact]
    public void A_mean_shift_adds_its_squared_length()
    {
        using var scope = NewDisposeScope();
        var a = Correlated(2, 1500, 12);
        var b = Skewed(3, 1500, 12);
        b = b - b.mean([0]) + a.mean([0]);   // same mean as a: only the covariances differ
        manual_seed(4);
        var v = randn(12, dtype: ScalarType.Float64);
        double vv = v.square().sum().item<double>();
        double unshifted = FrechetDistance.Between(a, b);
        Assert.True(unshifted > 0.1, $"{unshifted}");

        double previous = -1;
        foreach (double c in new[] { 0, 0.5, 1, 2 })
        {
            double shifted = FrechetDistance.Between(a, b + c * v);
            Assert.True(shifted > previous, $"c = {c}: {shifted} after {previous}");
            AssertClose(unshifted + c * c * vv, shifted, 1e-9, $"c = {c}");
            previous = shifted;
        }
    }

    [Fact]
    public void Distance_is_symmetric()
    {
        using var scope = NewDisposeScope();
        var a = Correlated(5, 800, 20) + 0.3;
        var b = Skewed(6, 1200, 20);
        double ab = FrechetDistance.Between(a, b), ba = FrechetDistance.Between(b, a);
        Assert.True(ab > 1, $"{ab}");
        AssertClose(ab, ba, 1e-9, "Between(a, b) vs Between(b, a)");
    }

    [Fact]
    public void Commuting_covariances_match_the_closed_form()
    {
        using var scope = NewDisposeScope();
        // Σ1 = R·diag(a)·Rᵀ and Σ2 = R·diag(b)·Rᵀ commute: d² = ‖Δμ‖² + Σ_i (√a_i − √b_i)², whatever the rotation R.
        double[] va = [4, 1, 0.25, 9], vb = [1, 1, 1, 0.01];
        double expected = 1 + 4 + 0.25;   // ‖(1, 2, 0, −0.5)‖²
        for (int i = 0; i < va.Length; i++) expected += Math.Pow(Math.Sqrt(va[i]) - Math.Sqrt(vb[i]), 2);

        var mean = tensor(new[] { 1.0, 2.0, 0.0, -0.5 });
        using (var diagonalA = new FeatureStatistics(mean, diag(tensor(va)), 10))
        using (var diagonalB = new FeatureStatistics(zeros(4, dtype: ScalarType.Float64), diag(tensor(vb)), 10))
            AssertClose(expected, FrechetDistance.Between(diagonalA, diagonalB), 1e-12, "diagonal");

        var rotation = linalg.qr(Correlated(7, 4, 4)).Q;   // (4, 4) orthogonal
        using var rotatedA = new FeatureStatistics(mean, rotation.matmul(diag(tensor(va))).matmul(rotation.T), 10);
        using var rotatedB = new FeatureStatistics(zeros(4, dtype: ScalarType.Float64), rotation.matmul(diag(tensor(vb))).matmul(rotation.T), 10);
        AssertClose(expected, FrechetDistance.Between(rotatedA, rotatedB), 1e-10, "rotated");
    }

    [Fact]
    public void Non_commuting_two_by_two_covariances_match_the_closed_form()
    {
        using var scope = NewDisposeScope();
        // For 2×2 PSD M with eigenvalues p, q: (tr M^½)² = (√p + √q)² = tr M + 2·√det M. With M = Σ1^½ Σ2 Σ1^½,
        // tr M = tr(Σ1Σ2) and det M = det Σ1 · det Σ2, so tr M^½ = √(tr(Σ1Σ2) + 2·√(det Σ1 · det Σ2)).
        double[,][] pairs =
        {
            { [2, 1, 2], [1, 0, 4] },        // (σ11, σ12, σ22) of Σ1, then of Σ2
            { [3, -1.2, 0.7], [0.5, 0.4, 2] },
            { [1, 0.999, 1], [1, -0.5, 1] },
        };
        for (int i = 0; i < pairs.GetLength(0); i++)
        {
            double[] p = pairs[i, 0], q = pairs[i, 1];
            double traceProduct = p[0] * q[0] + 2 * p[1] * q[1] + p[2] * q[2];
            double determinants = (p[0] * p[2] - p[1] * p[1]) * (q[0] * q[2] - q[1] * q[1]);
            double expected = 0.25 + p[0] + p[2] + q[0] + q[2] - 2 * Math.Sqrt(traceProduct + 2 * Math.Sqrt(determinants));

            using var a = new FeatureStatistics(tensor(new[] { 0.5, 0.0 }), tensor(new[,] { { p[0], p[1] }, { p[1], p[2] } }), 10);
            using var b = new FeatureStatistics(zeros(2, dtype: ScalarType.Float64), tensor(new[,] { { q[0], q[1] }, { q[1], q[2] } }), 10);
            AssertClose(expected, FrechetDistance.Between(a, b), 1e-10, $"pair {i}");
        }
    }

    [Fact]
    public void One_side_standard_normal_matches_the_latent_statistics_formula()
    {
        using var scope = NewDisposeScope();
        // With Σ2 = I the general formula reduces to LatentStatistics' d² = ‖m‖² + tr Σ + d − 2·tr Σ^½ (its own code path).
        var features = Skewed(8, 3000, 6);
        using var codes = FeatureStatistics.Of(features);
        using var prior = new FeatureStatistics(zeros(6, dtype: ScalarType.Float64), eye(6, dtype: ScalarType.Float64), 10);
        double expected = LatentStatistics.FrechetToStandardNormal(codes.Mean, codes.Covariance);
        Assert.True(expected > 1, $"{expected}");
        AssertClose(expected, FrechetDistance.Between(codes, prior), 1e-10, "codes vs prior");
        AssertClose(expected, FrechetDistance.Between(prior, codes), 1e-10, "prior vs codes");
    }

    [Fact]
    public void Accumulator_in_batches_equals_the_statistics_of_the_concatenation()
    {
        using var scope = NewDisposeScope();
        // float32 features far from the origin (offset 1000, spread ~0.05): the one-pass Σxxᵀ − N·μμᵀ would lose ~9 of
        // float64's 16 digits to cancellation; the shifted sums lose none
        var all = (0.05 * Correlated(9, 1000, 10) + 1000).to_type(ScalarType.Float32);
        using var accumulator = new FeatureStatistics.Accumulator();
        Assert.Throws<InvalidOperationException>(() => accumulator.Result());
        long start = 0;
        foreach (long size in new long[] { 1, 7, 300, 692 })
        {
            accumulator.Add(all.narrow(0, start, size));
            start += size;
        }
        Assert.Throws<ArgumentException>(() => accumulator.Add(zeros(3, 11)));

        using var batched = accumulator.Result();
        using var whole = FeatureStatistics.Of(all);
        Assert.Equal((1000L, 1000L, 10L), (batched.Count, whole.Count, batched.Dimension));
        AssertTensorsClose(whole.Mean, batched.Mean, 1e-13, "mean");
        AssertTensorsClose(whole.Covariance, batched.Covariance, 1e-10, "covariance");
        Assert.Equal(ScalarType.Float64, batched.Covariance.dtype);
    }

    [Fact]
    public void Cached_features_survive_a_save_and_load()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var features = Skewed(10, 500, 8).to_type(ScalarType.Float32);
        string path = dir["reference.safetensors"];
        FeatureCache.Save(path, features, "net-a/data-b");

        using var loaded = FeatureCache.TryLoad(path, "net-a/data-b", 500);
        Assert.NotNull(loaded);
        Assert.Equal(ScalarType.Float64, loaded.dtype);
        Assert.True(loaded.eq(features.to_type(ScalarType.Float64)).all().item<bool>());
        Assert.Equal("net-a/data-b", SafeTensors.ReadHeader(path).Metadata[FeatureCache.FingerprintKey]);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));   // the temporary file was renamed
        Assert.Throws<ArgumentException>(() => FeatureCache.Save(dir["x.safetensors"], zeros(3), "v1"));
    }

    [Fact]
    public void TryLoad_returns_null_for_a_missing_stale_or_corrupt_file()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var features = Correlated(11, 100, 4);
        string good = dir["good.safetensors"];
        FeatureCache.Save(good, features, "v1");
        Assert.NotNull(FeatureCache.TryLoad(good, "v1", 100));

        Assert.Null(FeatureCache.TryLoad(dir["missing.safetensors"], "v1", 100));
        Assert.Null(FeatureCache.TryLoad(good, "v2", 100));                       // another fingerprint
        Assert.Null(FeatureCache.TryLoad(good, "v1", 99));                        // another count

        string unmarked = dir["unmarked.safetensors"];
        SafeTensors.Write(unmarked, [("features", features)]);
        Assert.Null(FeatureCache.TryLoad(unmarked, "v1", 100));                   // saved without a fingerprint

        string garbage = dir["garbage.safetensors"];
        File.WriteAllBytes(garbage, Encoding.UTF8.GetBytes("not a safetensors file at all"));
        Assert.Null(FeatureCache.TryLoad(garbage, "v1", 100));

        string truncated = dir["truncated.safetensors"];
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(truncated, bytes[..^16]);
        Assert.Null(FeatureCache.TryLoad(truncated, "v1", 100));

        string foreign = dir["foreign.safetensors"];   // readable, right fingerprint, not features
        SafeTensors.Write(foreign, [("mean", zeros(4, dtype: ScalarType.Float64))],
            new Dictionary<string, string> { [FeatureCache.FingerprintKey] = "v1" });
        Assert.Null(FeatureCache.TryLoad(foreign, "v1", 100));
    }

    [Fact]
    public void Shapes_that_do_not_fit_are_refused()
    {
        using var scope = NewDisposeScope();
        var a = randn(10, 4);
        Assert.Throws<ArgumentException>(() => FrechetDistance.Between(a, randn(10, 5)));
        Assert.Throws<ArgumentException>(() => FrechetDistance.Between(a, randn(1, 4)));
        Assert.Throws<ArgumentException>(() => FrechetDistance.Between(a, randn(40)));
        Assert.Throws<ArgumentException>(() => FeatureStatistics.Of(randn(1, 4)));
        using var four = FeatureStatistics.Of(a);
        using var five = FeatureStatistics.Of(randn(10, 5));
        Assert.Throws<ArgumentException>(() => FrechetDistance.Between(four, five));
        Assert.Throws<ArgumentException>(() => new FeatureStatistics(zeros(3), eye(4), 10));
        Assert.Throws<ArgumentException>(() => new FeatureStatistics(zeros(3), eye(3), 1));
    }

    [FactRequiring(Package.PythonScipy)]
    public void Agrees_with_scipy_sqrtm_of_the_product()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        // 2000 × 64, correlated and non-Gaussian, with different covariances and means
        var a = Correlated(12, 2000, 64);
        var b = (Skewed(13, 2000, 64) * 0.7 + 0.2).to_type(ScalarType.Float32);   // the script converts; so does Between
        ScipyReference.WriteNpy(dir["a.npy"], a);
        ScipyReference.WriteNpy(dir["b.npy"], b);

        double ours = FrechetDistance.Between(a, b);
        double scipy = ScipyReference.RunScript(dir["a.npy"], dir["b.npy"]);
        double relative = Math.Abs(ours - scipy) / Math.Abs(scipy);
        log.WriteLine($"FD ours {ours:R}, scipy {scipy:R}, relative difference {relative:E2}");
        Console.WriteLine($"Fréchet distance vs scipy: ours {ours:R}, scipy {scipy:R}, relative difference {relative:E2}");
        Assert.True(ours > 1, $"{ours}");
        Assert.True(relative <= 1e-3, $"ours {ours:R}, scipy {scipy:R}: relative difference {relative:E2}");
    }

    /// <summary>(N, d) float64: Gaussian noise mixed by a random matrix, so the features are correlated.</summary>
    private static Tensor Correlated(int seed, long n, long d)
    {
        manual_seed(seed);
        var mixing = randn(d, d, dtype: ScalarType.Float64) / Math.Sqrt(d) + eye(d, dtype: ScalarType.Float64);
        return randn(n, d, dtype: ScalarType.Float64).matmul(mixing);
    }

    /// <summary>(N, d) float64: log-normal and uniform noise mixed by a random matrix: skewed, heavy on one side, correlated.</summary>
    private static Tensor Skewed(int seed, long n, long d)
    {
        manual_seed(seed);
        var mixing = randn(d, d, dtype: ScalarType.Float64) / Math.Sqrt(d);
        var noise = (0.5 * randn(n, d, dtype: ScalarType.Float64)).exp() + 2 * rand(n, d, dtype: ScalarType.Float64);
        return noise.matmul(mixing) + 0.5 * noise;
    }

    private static void AssertClose(double expected, double actual, double relative, string what) =>
        Assert.True(Math.Abs(expected - actual) <= relative * Math.Max(Math.Abs(expected), 1e-300),
            $"{what}: expected {expected:R}, got {actual:R} (relative difference {Math.Abs(expected - actual) / Math.Abs(expected):E2})");

    private static void AssertTensorsClose(Tensor expected, Tensor actual, double relative, string what)
    {
        double error = (expected - actual).abs().max().item<double>(), scale = expected.abs().max().item<double>();
        Assert.True(error <= relative * scale, $"{what}: max |difference| {error:E2}, max |value| {scale:E2}");
    }
}

/// <summary>The independent reference: scipy's sqrtm, run by Debian's Python 3 (the test needs python3-scipy,
/// skipped or required through <see cref="FactRequiringAttribute"/> like every other system package).</summary>
public static class ScipyReference
{
    public const string Missing = "python3-scipy is not installed; apt-get install python3-scipy";

    // Debian's packages go to /usr/bin/python3; a python3 earlier on PATH (pyenv, a venv) may lack them.
    private static readonly string Python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    private static readonly Lazy<string?> Problem = new(Probe);

    /// <summary>Runs tests/fd/scipy_fd.py on two .npy files; returns the distance it prints.</summary>
    public static double RunScript(string a, string b) => Numbers("scipy_fd.py", a, b)[^1];

    /// <summary>Runs the script tests/fd/<paramref name="script"/> with <paramref name="args"/>; returns the numbers
    /// it prints, one a line.</summary>
    public static double[] Numbers(string script, params string[] args)
    {
        if (Problem.Value is { } why) Assert.Fail($"{Missing} ({why}); .ci/run installs it.");
        var (exit, output, error) = Execute([Path.Combine(RepositoryRoot(), "tests", "fd", script), .. args]);
        Assert.True(exit == 0, $"tests/fd/{script} failed ({exit}): {output}{error}");
        return output.Trim().Split('\n').Select(line => double.Parse(line, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Writes x (N, d) as a NumPy .npy file (format 1.0: magic, header length, a Python-dict header, raw C-order data).</summary>
    public static void WriteNpy(string path, Tensor x)
    {
        var contiguous = x.detach().cpu().contiguous();
        string descr = contiguous.dtype switch
        {
            ScalarType.Float64 => "<f8",
            ScalarType.Float32 => "<f4",
            _ => throw new ArgumentException($"no .npy dtype here for {contiguous.dtype}"),
        };
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({contiguous.shape[0]}, {contiguous.shape[1]}), }}";
        int total = 10 + header.Length + 1;                       // magic (6) + version (2) + length (2) + header + '\n'
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";   // data starts 64-byte aligned
        using var file = File.Create(path);
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        file.Write(BitConverter.GetBytes((ushort)header.Length));   // little-endian (SafeTensors refuses other machines too)
        file.Write(Encoding.ASCII.GetBytes(header));
        file.Write(contiguous.bytes);
    }

    private static string? Probe()
    {
        var (exit, output, error) = Execute("-c", "import numpy, scipy.linalg");
        return exit == 0 ? null : (output + error).Trim().Split('\n')[^1];
    }

    private static (int Exit, string Output, string Error) Execute(params string[] args)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return (process.ExitCode, output.Result, error.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, "", $"{Python} is not installed ({e.Message})");
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VaeKit.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("repository root (VaeKit.slnx) not found above " + AppContext.BaseDirectory);
    }
}
