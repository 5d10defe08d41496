using System.Diagnostics;
using System.Text.Json;
using VaeKit.Config;
using VaeKit.Export;
using VaeKit.Tests.Cli;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Export;

/// <summary>
/// The exported file in real PyTorch: bench/check_export.py parses it with struct + json + torch.frombuffer, loads it
/// into bench/pytorch_bench.py's twin with strict name checking, and compares evaluation-mode outputs. Needs Debian's
/// python3-torch (tests/run installs it); skipped, saying so, without it.
/// </summary>
public class PyTorchTwinTests
{
    private const double Tolerance = 1e-5;

    [TheoryRequiring(Package.PythonTorch)]
    [InlineData("tiny", 3)]
    [InlineData("bench-s", 1)]
    public void PyTorchs_twin_loads_the_export_and_reconstructs_within_1e_5(string preset, int channels)
    {
        using var dir = new TempDir();
        var config = Presets.Get(preset) with { InChannels = channels };
        using var model = ExportFixture.Model(config, seed: 21);
        string run = ExportFixture.Run(dir.Path, model);
        var (exit, _, error) = CliRunner.Run("export", "--run", run, "--format", "safetensors", "--out", dir["weights.safetensors"]);
        Assert.True(exit == 0, error);

        // The model as vae sample/reconstruct would load it, on one fixed batch.
        var (_, loaded) = Checkpoint.LoadModel(Path.Combine(run, "checkpoints", "last.ckpt"));
        using (loaded)
        {
            manual_seed(5);
            using var x = rand(16, channels, config.ImageSize, config.ImageSize);
            var (reconstruction, mu) = ExportFixture.Outputs(loaded, x);
            SafeTensors.Write(dir["batch.safetensors"], [("x", x), ("reconstruction", reconstruction), ("mu", mu)]);
        }

        var result = RunCheck(dir["weights.safetensors"], dir["batch.safetensors"]);
        double reconstructionDiff = result.GetProperty("max_abs_diff_reconstruction").GetDouble();
        double muDiff = result.GetProperty("max_abs_diff_mu").GetDouble();
        Assert.True(reconstructionDiff <= Tolerance, $"reconstruction differs by {reconstructionDiff}");
        Assert.True(muDiff <= Tolerance, $"mu differs by {muDiff}");
        Assert.Equal(model.ParameterCount, result.GetProperty("parameters").GetInt64());
    }

    [FactRequiring(Package.PythonTorch)]
    public void Vae_import_takes_weights_saved_by_pytorch_and_reconstructs_like_the_twin()
    {
        using var dir = new TempDir();
        RunCheck("--from-pytorch", "bench-s", dir["twin.safetensors"], dir["batch.safetensors"]);   // name-sorted, no metadata
        var (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["twin.safetensors"], "--preset", "bench-s", "--out", dir["run"]);
        Assert.True(exit == 0, error);

        var (_, model) = Checkpoint.LoadModel(Path.Combine(dir["run"], "checkpoints", "last.ckpt"));
        using (model)
        {
            var batch = SafeTensors.ReadAll(dir["batch.safetensors"]);
            var (reconstruction, mu) = ExportFixture.Outputs(model, batch["x"]);
            double reconstructionDiff = (reconstruction - batch["reconstruction"]).abs().max().item<float>();
            double muDiff = (mu - batch["mu"]).abs().max().item<float>();
            Console.WriteLine($"PyTorch → vae import: max |diff| reconstruction {reconstructionDiff:G3}, mu {muDiff:G3}");
            Assert.True(reconstructionDiff <= Tolerance, $"reconstruction differs by {reconstructionDiff}");
            Assert.True(muDiff <= Tolerance, $"mu differs by {muDiff}");
        }
    }

    private static JsonElement RunCheck(string weights, string batch) =>
        RunCheck(weights, batch, "--tolerance", Tolerance.ToString("R", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Runs bench/check_export.py under Debian's Python; returns its JSON line.</summary>
    private static JsonElement RunCheck(params string[] args)
    {
        string script = Path.Combine(Requirements.RepositoryRoot, "bench", "check_export.py");
        var start = new ProcessStartInfo(Requirements.Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (error.Contains("No module named 'torch'"))
            Assert.Fail(Requirements.Missing(Package.PythonTorch) ?? error);
        Assert.True(process.ExitCode == 0, $"bench/check_export.py failed ({process.ExitCode}): {output.Result}{error}");
        string line = output.Result.Trim().Split('\n')[^1];
        Console.WriteLine($"PyTorch twin check: {line}");
        return JsonDocument.Parse(line).RootElement.Clone();
    }
}
