using System.Text.Json;
using System.Text.Json.Nodes;
using SkiaSharp;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Priors;
using VaeKit.Tests.Cli;
using static TorchSharp.torch;

namespace VaeKit.Tests.Priors;

/// <summary><c>vae prior</c>, <c>--prior</c> and the prior seam on tiny trained runs.</summary>
[Trait("Category", "Slow")]
public class PriorCliTests
{
    private static string[] TrainVae(string name, string runs, string cache) =>
    [
        "train", "--model", "vae", "--data", "synthetic:256", "--preset", "tiny", "--widths", "8,16", "--latent", "8",
        "--epochs", "1", "--batch-size", "64", "--schedule", "constant", "--warmup", "2", "--threads", "1",
        "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    private static string[] TrainVq(string name, string runs, string cache) =>
    [
        "train", "--model", "vq-vae", "--data", "synthetic:256", "--preset", "tiny", "--widths", "8,16", "--latent", "8",
        "--model-option", "codebook=32", "--model-option", "dead_after=3", "--epochs", "1", "--batch-size", "64",
        "--schedule", "constant", "--warmup", "2", "--threads", "1", "--name", name, "--runs-dir", runs, "--cache-dir", cache,
    ];

    private static void Ok((int Exit, string Out, string Err) result, string what) => Assert.True(result.Exit == 0, what + ": " + result.Out + result.Err);

    private static void Refused((int Exit, string Out, string Err) result, string expected)
    {
        Assert.Equal(2, result.Exit);
        Assert.Contains(expected, result.Err);
        Assert.DoesNotContain("   at ", result.Err);            // one line, no stack trace
    }

    private static byte[] Samples(string run, string prior, string png, int seed = 0)
    {
        Ok(CliRunner.Run("sample", "--run", run, "--prior", prior, "--n", "8", "--seed", seed.ToString(), "--out", png, "--scale", "1"), "sample " + prior);
        using var bitmap = SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        return File.ReadAllBytes(png);
    }

    private static int Count(string text, string part) => (text.Length - text.Replace(part, "").Length) / part.Length;

    [Fact]
    public async Task Gmm_on_a_vae_fits_samples_evaluates_and_is_refused_after_the_checkpoint_changes()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        Ok(CliRunner.Run(TrainVae("vae", runs, cache)), "train");
        string run = Path.Combine(runs, "vae");

        // Not fitted yet, and kinds that do not apply: one clear line, exit 2.
        Refused(CliRunner.Run("sample", "--run", run, "--prior", "gmm"), "no gmm prior yet");
        Refused(CliRunner.Run("prior", "--run", run, "--kind", "autoregressive"), "vq-vae");
        Refused(CliRunner.Run("sample", "--run", run, "--prior", "autoregressive"), "vq-vae");
        Refused(CliRunner.Run("prior", "--run", run, "--kind", "banana"), "'banana' is not a prior");
        Assert.Throws<BadInputException>(() => VaeKit.Serving.ServedModel.Load(run, prior: "gmm"));

        var (exit, output, error) = CliRunner.Run("prior", "--run", run, "--kind", "gmm", "--components", "3", "--seed", "2");
        Assert.True(exit == 0, output + error);
        Assert.Contains("heldout log likelihood", output);
        Assert.Contains("fit seconds", output);
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "priors", "gmm", "prior.json")))!;
        Assert.Equal("gmm", record["kind"]!.GetValue<string>());
        Assert.Equal(3, record["settings"]!["components"]!.GetValue<int>());
        Assert.Equal(64, record["checkpoint_sha256"]!.GetValue<string>().Length);
        double heldOut = record["figures"]!["heldout_log_likelihood"]!.GetValue<double>();
        Assert.True(double.IsFinite(heldOut));

        // Seeded sampling repeats; the gmm's samples are not the standard prior's.
        var a = Samples(run, "gmm", dir["a.png"]);
        var b = Samples(run, "gmm", dir["b.png"]);
        var standard = Samples(run, "standard", dir["s.png"]);
        Assert.Equal(a, b);
        Assert.NotEqual(a, standard);

        // The library seam: the loaded prior draws the same codes as a fresh fit with the same seed, and as itself.
        using (var model = TrainedModel.Load(run))
        {
            using var loaded = model.Prior("gmm");
            Assert.Equal("gmm", loaded.Name);
            using var c1 = model.SampleCodes(loaded, 16, 1.0, 4);
            using var c2 = model.SampleCodes(loaded, 16, 1.0, 4);
            Assert.Equal(new long[] { 16, 8 }, c1.shape);
            Assert.Equal(c1.data<float>().ToArray(), c2.data<float>().ToArray());
            using var zero = model.SampleCodes(loaded, 16, 0.0, 4);
            using var means = ((GaussianMixturePrior)loaded).Mixture.Means.to(ScalarType.Float32);
            // T = 0: each draw is one of the component means.
            using var gap = (zero.unsqueeze(1) - means.unsqueeze(0)).abs().amax(2).amin(1);
            Assert.True(gap.max().item<float>() < 1e-5f);
        }

        // vae serve --prior gmm: the sample button draws from the mixture, seeded.
        using (var served = VaeKit.Serving.ServedModel.Load(run, prior: "gmm"))
        using (var plain = VaeKit.Serving.ServedModel.Load(run))
        {
            Assert.Equal("gmm", served.Prior);
            var z1 = await served.SampleCodeAsync(1.0, 9);
            Assert.Equal(z1, await served.SampleCodeAsync(1.0, 9));
            Assert.NotEqual(z1, await plain.SampleCodeAsync(1.0, 9));
        }

        // eval under the gmm keeps eval.json (the standard one) and writes eval-gmm.json naming its prior.
        Ok(CliRunner.Run("eval", "--run", run, "--samples", "2"), "eval standard");
        string standardReport = File.ReadAllText(Path.Combine(run, "eval.json"));
        Ok(CliRunner.Run("eval", "--run", run, "--samples", "2", "--prior", "gmm"), "eval gmm");
        Assert.Equal(standardReport, File.ReadAllText(Path.Combine(run, "eval.json")));
        Assert.Equal("standard", JsonNode.Parse(standardReport)!["prior"]!.GetValue<string>());
        var gmmReport = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval-gmm.json")))!;
        Assert.Equal("gmm", gmmReport["prior"]!.GetValue<string>());
        // Both carry the image-space FD at the same N, in the faces network's features; the reconstructions and the
        // real floor do not depend on the prior, the samples' FD does.
        var standardNode = JsonNode.Parse(standardReport)!;
        foreach (var key in new[] { "fd", "fd_reconstructions", "fd_floor" })
            Assert.True(double.IsFinite(standardNode[key]!.GetValue<double>()) && double.IsFinite(gmmReport[key]!.GetValue<double>()), key);
        Assert.Equal("shipped:faces", gmmReport["fd_net"]!.GetValue<string>());
        Assert.Equal(standardNode["fd_images"]!.GetValue<int>(), gmmReport["fd_images"]!.GetValue<int>());
        Assert.Equal(standardNode["fd_reconstructions"]!.GetValue<double>(), gmmReport["fd_reconstructions"]!.GetValue<double>(), 9);
        Assert.Equal(standardNode["fd_floor"]!.GetValue<double>(), gmmReport["fd_floor"]!.GetValue<double>(), 9);
        Assert.NotEqual(standardNode["fd"]!.GetValue<double>(), gmmReport["fd"]!.GetValue<double>());
        // KID and precision/recall of each prior's samples beside the FD, against the same images.
        foreach (var node in new[] { standardNode, gmmReport })
        {
            Assert.True(double.IsFinite(node["kid"]!.GetValue<double>()) && node["kid_std"]!.GetValue<double>() > 0, node.ToJsonString());
            Assert.InRange(node["precision"]!.GetValue<double>(), 0, 1);
            Assert.InRange(node["recall"]!.GetValue<double>(), 0, 1);
        }
        Assert.NotEqual(standardNode["kid"]!.GetValue<double>(), gmmReport["kid"]!.GetValue<double>());

        // vae report --prior: a generation section per run, with each prior's grid, its fit and the FD eval stored.
        Ok(CliRunner.Run("report", run, "--out", dir["plain.html"]), "report");
        Ok(CliRunner.Run("report", run, "--prior", "standard", "--prior", "gmm", "--samples", "8", "--out", dir["gen.html"]), "report --prior");
        string plainPage = File.ReadAllText(dir["plain.html"]), generation = File.ReadAllText(dir["gen.html"]);
        Assert.DoesNotContain("<h2>Generation</h2>", plainPage);
        Assert.Contains("<h2>Generation</h2>", generation);
        Assert.Equal(Count(plainPage, "data:image/png") + 2, Count(generation, "data:image/png"));
        Assert.Contains("alt=\"gmm samples\"", generation);
        Assert.Contains("fitted at step", generation);
        string Fd(JsonNode node) => node["fd"]!.GetValue<double>().ToString("G4", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains($"<td>{Fd(standardNode)} ({standardNode["fd_images"]})</td>", generation);
        Assert.Contains($"<td>{Fd(gmmReport)} ({gmmReport["fd_images"]})</td>", generation);

        // Training on changes the checkpoint: the stored gmm no longer fits it and is refused until refitted. The
        // later checkpoint is last.ckpt (best.ckpt moves only if the held-out loss improves, which rounding decides
        // on two tiny epochs).
        Ok(CliRunner.Run("train", "--resume", run, "--epochs", "2"), "resume");
        Refused(CliRunner.Run("sample", "--run", run, "--prior", "gmm", "--checkpoint", "last"), "refit with vae prior");
        Refused(CliRunner.Run("eval", "--run", run, "--prior", "gmm", "--checkpoint", "last"), "refit with vae prior");
        Refused(CliRunner.Run("report", run, "--prior", "gmm", "--checkpoint", "last", "--out", dir["stale.html"]), "refit with vae prior");
        Assert.False(File.Exists(dir["stale.html"]));
        Ok(CliRunner.Run("prior", "--run", run, "--kind", "gmm", "--components", "3", "--checkpoint", "last"), "refit");
        Ok(CliRunner.Run("sample", "--run", run, "--prior", "gmm", "--checkpoint", "last", "--out", dir["c.png"]), "sample after the refit");

        // The refit stored its mixture under a new name and removed the earlier fit's file once its record landed.
        string gmmDir = Path.Combine(run, "priors", "gmm"), recordPath = Path.Combine(gmmDir, "prior.json");
        string recordText = File.ReadAllText(recordPath);
        string file = JsonNode.Parse(recordText)!["settings"]!["file"]!.GetValue<string>();
        Assert.Equal([file], Directory.GetFiles(gmmDir, "gmm-*").Select(Path.GetFileName));
        // A refit stopped by Ctrl-C leaves the stored fit as it was and says so.
        using (var model = TrainedModel.Load(run, "last", "cpu"))
        using (var data = model.LoadData(null))
        using (var cancelled = new CancellationTokenSource())
        {
            cancelled.Cancel();
            var stopped = Assert.Throws<PriorFitInterrupted>(() => PriorKinds.Fit(model, "gmm", data, new PriorFitOptions { Components = 3 }, cancelled.Token));
            Assert.Contains("nothing was stored, and the earlier fit, if any, is unchanged", stopped.WhatExists);
        }
        Assert.Equal(recordText, File.ReadAllText(recordPath));
        Assert.Equal([file], Directory.GetFiles(gmmDir, "gmm-*").Select(Path.GetFileName));
        Ok(CliRunner.Run("sample", "--run", run, "--prior", "gmm", "--checkpoint", "last", "--out", dir["d.png"]), "sample after the stopped refit");
    }

    /// <summary>A user's prior kind: every draw is the mean training code (plus T·noise), stored as JSON.</summary>
    private sealed class MeanCodePriorKind : IPriorKind
    {
        public string Name => "mean-code";
        public SettingText? Inapplicable(VaeModel model) => model.IsVariational ? null : SettingText.Plain("mean-code needs a variational model.");

        public (IFittedPrior Prior, JsonObject Settings, Dictionary<string, double> Figures) Fit(
            TrainedModel model, LoadedDataset data, string directory, PriorFitOptions options, CancellationToken cancellationToken)
        {
            using var codes = PriorKinds.EncodeModes(model, data.Train, options.BatchSize);
            var mean = codes.mean([0]).data<double>().ToArray();
            Json.WriteAllTextAtomic(Path.Combine(directory, "mean.json"), JsonSerializer.Serialize(mean));
            return (new MeanCode(mean), [], new Dictionary<string, double> { ["codes"] = codes.shape[0] });
        }

        public IFittedPrior Load(TrainedModel model, string directory, PriorRecord record) =>
            new MeanCode(JsonSerializer.Deserialize<double[]>(File.ReadAllText(Path.Combine(directory, "mean.json")))!);

        private sealed class MeanCode(double[] mean) : IFittedPrior
        {
            public string Name => "mean-code";
            public Tensor Sample(long n, double temperature, Generator? generator, Device device) =>
                (tensor(mean).to(ScalarType.Float32).unsqueeze(0) + temperature * randn([n, mean.Length], generator: generator)).to(device);
            public void Dispose() { }
        }
    }

    [Fact]
    public void A_user_prior_kind_registered_by_name_fits_and_samples_through_the_cli()
    {
        PriorKinds.Register(new MeanCodePriorKind());
        Assert.Contains("mean-code", PriorKinds.Names);
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        Ok(CliRunner.Run(TrainVae("vae", runs, cache)), "train");
        string run = Path.Combine(runs, "vae");
        Ok(CliRunner.Run("prior", "--run", run, "--kind", "mean-code"), "prior mean-code");
        Assert.True(File.Exists(Path.Combine(run, "priors", "mean-code", "mean.json")));
        var a = Samples(run, "mean-code", dir["a.png"], seed: 1);
        var b = Samples(run, "mean-code", dir["b.png"], seed: 1);
        Assert.Equal(a, b);
        using var model = TrainedModel.Load(run);
        using var t0 = model.Sample(2, 0.0, 0, "mean-code");            // T = 0: the mean code twice, the same image
        Assert.Equal(t0[0].data<float>().ToArray(), t0[1].data<float>().ToArray());
    }

    private static List<JsonElement> Rows(string directory, string type) =>
        File.ReadAllLines(Path.Combine(directory, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == type).ToList();

    private static void CopyDirectory(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to));
    }

    [Fact]
    public void Autoregressive_on_a_vq_vae_trains_logs_bits_per_code_and_an_interrupted_fit_resumes_to_the_same_weights()
    {
        using var dir = new TempDir();
        string runs = dir["runs"], cache = dir["cache"];
        Ok(CliRunner.Run(TrainVq("vq", runs, cache)), "train");
        string straight = Path.Combine(runs, "vq");
        string split = dir["split"];
        CopyDirectory(straight, split);

        Refused(CliRunner.Run("prior", "--run", straight, "--kind", "gmm"), "vq-vae's codes are discrete");
        Refused(CliRunner.Run("sample", "--run", straight, "--prior", "autoregressive"), "no autoregressive prior yet");

        string[] Fit(string run, int steps) =>
            ["prior", "--run", run, "--kind", "autoregressive", "--max-steps", steps.ToString(), "--checkpoint-every", "4",
             "--log-every", "1", "--batch-size", "16", "--seed", "3"];
        var (exit, output, error) = CliRunner.Run(Fit(straight, 8));
        Assert.True(exit == 0, output + error);
        Assert.Contains("heldout bits per code", output);
        string priorDir = Path.Combine(straight, "priors", "autoregressive");
        var train = Rows(priorDir, "train");
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), train.Select(r => r.GetProperty("step").GetInt64()));
        Assert.All(train, r => Assert.InRange(r.GetProperty("bits_per_code").GetDouble(), 0, 20));
        var heldOut = Rows(priorDir, "heldout");
        Assert.Equal([4L, 8L], heldOut.Select(r => r.GetProperty("step").GetInt64()));
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(priorDir, "prior.json")))!;
        double bits = record["figures"]!["heldout_bits_per_code"]!.GetValue<double>();
        Assert.InRange(bits, 0, Math.Log2(32) + 1);
        var png = Samples(straight, "autoregressive", dir["ar.png"]);
        Assert.Equal(png, Samples(straight, "autoregressive", dir["ar2.png"]));

        // Interrupted after step 2 (cancellation saves first), then the CLI resumes it to 8: the same rows and weights.
        using (var model = TrainedModel.Load(split))
        {
            using var cancel = new CancellationTokenSource();
            var options = new PriorFitOptions
            {
                MaxSteps = 8, CheckpointEvery = 4, LogEvery = 1, BatchSize = 16, Seed = 3,
                OnRow = row => { if (row["step"]!.GetValue<long>() == 2) cancel.Cancel(); },
            };
            var stopped = Assert.Throws<PriorFitInterrupted>(() => PriorKinds.Fit(model, "autoregressive", options, cancel.Token));
            Assert.Contains("state at step 2 of 8 is stored", stopped.WhatExists);
        }
        string splitDir = Path.Combine(split, "priors", "autoregressive");
        Assert.False(File.Exists(Path.Combine(splitDir, "prior.json")));
        Assert.True(File.Exists(Path.Combine(splitDir, "checkpoint.ckpt")));
        Refused(CliRunner.Run("sample", "--run", split, "--prior", "autoregressive"), "no autoregressive prior yet");
        Ok(CliRunner.Run(Fit(split, 8)), "resume");
        static string Key(JsonElement r) => r.ToString();
        Assert.Equal(train.Select(Key), Rows(splitDir, "train").Select(Key));
        Assert.Equal(heldOut.Select(Key), Rows(splitDir, "heldout").Select(Key));
        var resumedRecord = JsonNode.Parse(File.ReadAllText(Path.Combine(splitDir, "prior.json")))!;
        string Weights(string directory) => Path.Combine(directory, JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "prior.json")))!["settings"]!["file"]!.GetValue<string>());
        Assert.Equal(File.ReadAllBytes(Weights(priorDir)), File.ReadAllBytes(Weights(splitDir)));
        Assert.Equal(bits, resumedRecord["figures"]!["heldout_bits_per_code"]!.GetValue<double>());
    }
}
