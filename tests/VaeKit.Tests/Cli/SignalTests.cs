using VaeKit.Cli;

namespace VaeKit.Tests.Cli;

/// <summary>Ctrl-C as a user sends it: SIGINT to a real `vae train` process.</summary>
[Trait("Category", "Slow")]
public class SignalTests
{
    [Fact]
    public async Task Sigint_finishes_the_step_saves_and_exits_130_then_resume_completes()
    {
        using var dir = new TempDir();
        string run = dir["runs/sig"];
        using var vae = VaeProcess.Start(["train", "--data", "synthetic:2000", "--epochs", "50", "--name", "sig", "--runs-dir", dir["runs"],
                                          "--cache-dir", dir["cache"], "--log-every", "1", "--threads", "1"]);
        // Wait until training is under way (a few logged steps), then interrupt.
        await vae.WaitForMetricRows(Path.Combine(run, "metrics.jsonl"), 3);
        var (exitCode, output, errors) = await vae.Interrupt();

        Assert.Equal(ExitCodes.Interrupted, exitCode);
        Assert.Contains("--resume", output);
        Assert.True(File.Exists(Path.Combine(run, "checkpoints/last.ckpt")));
        Assert.DoesNotContain("   at ", errors);
        var header = VaeKit.Training.Checkpoint.ReadHeader(Path.Combine(run, "checkpoints/last.ckpt"));
        Assert.True(header.Step >= 3, $"saved at step {header.Step}");

        var (exit, resumedOut, resumedErr) = CliRunner.Run("train", "--resume", run, "--epochs", "1");
        Assert.True(exit == 0, resumedOut + resumedErr);
    }
}
