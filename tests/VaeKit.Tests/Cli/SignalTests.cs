using System.Diagnostics;
using System.Runtime.InteropServices;
using VaeKit.Cli;

namespace VaeKit.Tests.Cli;

/// <summary>Ctrl-C as a user sends it: SIGINT to a real `vae train` process.</summary>
[Trait("Category", "Slow")]
public class SignalTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private const int SigInt = 2;

    [Fact]
    public async Task Sigint_finishes_the_step_saves_and_exits_130_then_resume_completes()
    {
        using var dir = new TempDir();
        string run = dir["runs/sig"];
        string vae = Path.ChangeExtension(typeof(VaeCli).Assembly.Location, ".dll");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { vae, "train", "--data", "synthetic:2000", "--epochs", "50", "--name", "sig", "--runs-dir", dir["runs"],
                             "--cache-dir", dir["cache"], "--log-every", "1", "--threads", "1" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();

        // Wait until training is under way (a few logged steps), then interrupt.
        var metrics = Path.Combine(run, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(metrics) && File.ReadLines(metrics).Count() >= 3))
        {
            if (process.HasExited) Assert.Fail($"vae exited early: {await stdout}{await stderr}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "training did not start");
            await Task.Delay(100);
        }
        Assert.Equal(0, kill(process.Id, SigInt));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout, errors = await stderr;

        Assert.Equal(ExitCodes.Interrupted, process.ExitCode);
        Assert.Contains("--resume", output);
        Assert.True(File.Exists(Path.Combine(run, "checkpoints/last.ckpt")));
        Assert.DoesNotContain("   at ", errors);
        var header = VaeKit.Training.Checkpoint.ReadHeader(Path.Combine(run, "checkpoints/last.ckpt"));
        Assert.True(header.Step >= 3, $"saved at step {header.Step}");

        var (exit, resumedOut, resumedErr) = CliRunner.Run("train", "--resume", run, "--epochs", "1");
        Assert.True(exit == 0, resumedOut + resumedErr);
    }
}
