using System.Diagnostics;
using System.Runtime.InteropServices;
using VaeKit.Cli;

namespace VaeKit.Tests.Tracking;

/// <summary>Ctrl-C on a real <c>vae train --wandb</c> process: the W&amp;B run is finished with exit code 130.</summary>
[Trait("Category", "Slow")]
public class WandbSignalTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [Fact]
    public async Task Sigint_marks_the_wandb_run_finished_with_exit_code_130_and_loses_no_row()
    {
        using var dir = new TempDir();
        using var server = new FakeWandbServer(WandbClientTests.Key);
        string vae = Path.ChangeExtension(typeof(VaeCli).Assembly.Location, ".dll");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { vae, "train", "--data", "synthetic:2000", "--widths", "4,8", "--latent", "4", "--epochs", "50", "--name", "sig",
                             "--runs-dir", dir["runs"], "--cache-dir", dir["cache"], "--log-every", "1", "--threads", "1", "--wandb" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["WANDB_API_KEY"] = WandbClientTests.Key, ["WANDB_BASE_URL"] = server.BaseUrl, ["WANDB_MODE"] = "online" },
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();

        string metrics = Path.Combine(dir["runs/sig"], "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(metrics) && File.ReadLines(metrics).Count() >= 3))
        {
            if (process.HasExited) Assert.Fail($"vae exited early: {await stdout}{await stderr}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "training did not start");
            await Task.Delay(100);
        }
        Assert.Equal(0, kill(process.Id, 2));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout + await stderr;

        Assert.Equal(ExitCodes.Interrupted, process.ExitCode);
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
