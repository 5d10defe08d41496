using System.Text.Json.Nodes;
using VaeKit.Evaluation;
using VaeKit.Tests.Cli;
using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

/// <summary>
/// The standard FID's network by path: a stand-in with inception-2015-12-05.pt's signature, scripted by Debian's
/// python3-torch from tests/fixtures/inception_standin.py, gives PyTorch's features in VaeKit and measures the FD,
/// KID and precision/recall in <c>vae fd</c>; a module of another signature and a missing Inception file are refused.
/// </summary>
public class TorchScriptFeaturesTests
{
    private static void Script(string dir) => Requirements.RunFixture("inception_standin.py", dir);

    [FactRequiring(Package.PythonTorch)]
    public void A_network_of_inceptions_signature_gives_pytorchs_features()
    {
        using var dir = new TempDir();
        Script(dir.Path);
        using var network = FeatureExtractors.Load(dir["standin.pt"]);
        Assert.IsType<TorchScriptFeatures>(network);
        Assert.Equal(Path.GetFullPath(dir["standin.pt"]), network.Source);
        using var batch = jit.load(dir["batch.pt"]);
        var buffers = batch.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        using var scope = NewDisposeScope();
        // VaeKit hands images over as floats in [0, 1]; they go back to the same bytes before the network sees them.
        var features = network.FeaturesOf(buffers["x"].to_type(ScalarType.Float32) / 255);
        Assert.Equal(new long[] { 5, 64 }, features.shape);
        Assert.True((features - buffers["f"]).abs().max().item<float>() < 1e-5, "VaeKit and PyTorch disagree on the features");
        // Grey images are repeated into RGB, as FID code does.
        var grey = rand(2, 1, 32, 32);
        Assert.True(network.FeaturesOf(grey).allclose(network.FeaturesOf(grey.expand(-1, 3, -1, -1))));
    }

    [FactRequiring(Package.PythonTorch)]
    public void Vae_fd_measures_in_it_by_path_or_as_inception_from_the_cache_and_refuses_what_does_not_fit()
    {
        using var dir = new TempDir();
        Script(dir.Path);
        var (exit, output, error) = CliRunner.Run("fd", "--data", "synthetic:60", "--reference", "synthetic:80", "--net", dir["standin.pt"], "--cache-dir", dir["cache"], "--json");
        Assert.True(exit == 0, output + error);
        var report = JsonNode.Parse(output)!;
        Assert.Equal(Path.GetFullPath(dir["standin.pt"]), report["fd_net"]!.GetValue<string>());
        Assert.True(report["fd"]!.GetValue<double>() > 0 && double.IsFinite(report["kid"]!.GetValue<double>()));
        Assert.InRange(report["precision"]!.GetValue<double>(), 0, 1);

        var wrong = CliRunner.Run("fd", "--data", "synthetic:20", "--reference", "synthetic:30", "--net", dir["wrong.pt"], "--cache-dir", "");
        Assert.Equal(2, wrong.Exit);
        Assert.Contains("does not follow the contract", wrong.Err);
        Assert.DoesNotContain("   at ", wrong.Err);

        // `inception` is the file of that name in the cache; without it, one line says where to get it.
        Directory.CreateDirectory(dir["cache"]);
        var missing = CliRunner.Run("fd", "--data", "synthetic:20", "--reference", "synthetic:30", "--net", "inception", "--cache-dir", dir["cache"]);
        Assert.Equal(2, missing.Exit);
        Assert.Contains(TorchScriptFeatures.InceptionUrl, missing.Err);
        Assert.DoesNotContain("   at ", missing.Err);
        string cached = Path.Combine(dir["cache"], TorchScriptFeatures.InceptionFile);
        File.Copy(dir["standin.pt"], cached);
        (exit, output, error) = CliRunner.Run("fd", "--data", "synthetic:60", "--reference", "synthetic:80", "--net", "inception", "--cache-dir", dir["cache"], "--json");
        Assert.True(exit == 0, output + error);
        Assert.Equal(Path.GetFullPath(cached), JsonNode.Parse(output)!["fd_net"]!.GetValue<string>());
        Assert.Equal(report["fd"]!.GetValue<double>(), JsonNode.Parse(output)!["fd"]!.GetValue<double>(), 9);
    }
}
