namespace VaeKit.Tests.Cli;

/// <summary>Bad flags of the evaluation commands are caught before any data or training, with exit code 2.</summary>
public class EvaluationCliTests
{
    [Theory]
    [InlineData("--kl-weights", "0,x", "not a number")]
    [InlineData("--kl-weights", "1,1", "twice")]
    [InlineData("--kl-weights", "-1", "0 or more")]
    [InlineData("--model", "ae", "--with-ae")]
    [InlineData("--kl-schedule", "warmup:5", "linear-warmup:STEPS")]
    [InlineData("--free-bits", "-0.5", "--free-bits")]
    public void Sweep_flags_are_checked_first(string flag, string value, string hint)
    {
        using var dir = new TempDir();
        string[] args = flag == "--kl-weights"
            ? ["sweep", flag, value, "--sweeps-dir", dir["sweeps"]]
            : ["sweep", "--kl-weights", "1", flag, value, "--sweeps-dir", dir["sweeps"]];
        var (exit, _, error) = CliRunner.Run(args);
        Assert.Equal(2, exit);
        Assert.Contains(hint, error);
        Assert.False(Directory.Exists(dir["sweeps"]));
    }

    [Fact]
    public void Train_refuses_an_unknown_kl_schedule()
    {
        var (exit, _, error) = CliRunner.Run("train", "--kl-schedule", "cyclical:4:2");
        Assert.Equal(2, exit);
        Assert.Contains("cyclical:CYCLES[:RATIO]", error);
    }

    [Fact]
    public void Eval_of_a_missing_run_is_bad_input()
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("eval", "--run", dir["nope"]);
        Assert.Equal(2, exit);
        Assert.Contains("No run directory", error);
        Assert.Equal(2, CliRunner.Run("interpolate", "--run", dir["nope"], "--mode", "cubic").Exit);
    }
}
