using VaeKit.Cli;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Tracking;

/// <summary>Ctrl-C on a real <c>vae train --wandb</c> process: the W&amp;B run is finished with exit code 130.</summary>
[Trait("Category", "Slow")]
public class WandbSignalTests
{
    [Fact]
    public async Task Sigint_marks_the_wandb_run_finished_with_exit_code_130_and_loses_no_row()
    {
        using var dir = new TempDir();
        using var server = new FakeWandbServer(WandbClientTests.Key);
        using var vae = VaeProcess.Start(
            ["train", "--data", "synthetic:2000", "--widths", "4,8", "--latent", "4", "--epochs", "50", "--name", "sig",
             "--runs-dir", dir["runs"], "--cache-dir", dir["cache"], "--log-every", "1", "--threads", "1", "--wandb"],
            new Dictionary<string, string?> { ["WANDB_API_KEY"] = WandbClientTests.Key, ["WANDB_BASE_URL"] = server.BaseUrl, ["WANDB_MODE"] = "online" });
        string metrics = Path.Combine(dir["runs/sig"], "metrics.jsonl");
        await vae.WaitForMetricRows(metrics, 3);
        var (exitCode, stdout, stderr) = await vae.Interrupt();
        string output = stdout + stderr;

        Assert.Equal(ExitCodes.Interrupted, exitCode);
        Assert.Contains("W&B run finished (exit code 130)", output);
        Assert.True(server.Complete);
        Assert.Equal(130, server.ExitCode);
        Assert.Empty(server.Violations);
        // Every step the run took is on the server once: the metrics rows (log-every 1) match the history.
        var trained = File.ReadLines(metrics).Count(l => l.Contains("\"type\":\"train\""));
        var steps = server.Rows().Select(r => r["_step"]!.GetValue<long>()).ToList();
        Assert.Equal(Enumerable.Range(1, trained).Select(i => (long)i), steps);
    }
}
