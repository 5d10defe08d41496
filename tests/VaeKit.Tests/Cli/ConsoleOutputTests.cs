using System.Text.RegularExpressions;
using VaeKit.Tests.Data;

namespace VaeKit.Tests.Cli;

/// <summary>
/// What a user sees: a log file when output is redirected (`vae train > train.log 2>&amp;1`, the usual way on a
/// cluster), and a terminal otherwise.
/// </summary>
[Trait("Category", "Slow")]
public partial class ConsoleOutputTests
{
    [Fact]
    public void Redirected_output_is_plain_unwrapped_lines()
    {
        using var dir = new TempDir();
        // A folder with bad files (the "skipped … bad file(s)" phrase) under a long path (long lines).
        string data = dir[new string('d', 90) + "/faces"];
        var files = TestImages.MessyDataSet();
        for (int i = 0; i < 40; i++)
            files[$"more/{i:D2}.png"] = TestImages.Solid(20, 20, new SkiaSharp.SKColor((byte)(i * 6), 80, (byte)(250 - i * 5)));
        TestImages.WriteFolder(data, files);

        var (exit, output, errors) = VaeProcess.Run(["train", "--data", data, "--image-size", "16", "--widths", "8,8", "--latent", "4",
            "--batch-size", "8", "--epochs", "2", "--val-fraction", "0.2", "--name", "plain", "--runs-dir", dir["runs"],
            "--cache-dir", dir["cache"], "--threads", "1"]);

        Assert.True(exit == 0, output + errors);
        Assert.DoesNotContain('\u001b', output);                                   // no ANSI codes in a log file
        var lines = output.Split('\n');
        // The data line says everything on one line, however long.
        Assert.Contains(lines, l => l.Contains("data: ") && l.Contains(data) && l.Contains("skipped 3 bad file(s)"));
        // One line per epoch, whole.
        Assert.Equal(2, lines.Count(l => EpochLine().IsMatch(l)));
        Assert.All(lines.Where(l => l.StartsWith("epoch ")), l => Assert.Matches(EpochLine(), l));
        Assert.Contains(lines, l => l.StartsWith("done after "));
    }

    [Fact]
    public void On_a_terminal_finished_progress_bars_are_not_redrawn_under_later_lines()
    {
        using var dir = new TempDir();
        var (exit, screen) = VaeProcess.RunInTerminal(["train", "--data", "synthetic:300", "--image-size", "16", "--widths", "8,8",
            "--latent", "4", "--batch-size", "16", "--epochs", "3", "--name", "tty", "--runs-dir", dir["runs"],
            "--cache-dir", dir["cache"], "--threads", "1"]);

        Assert.True(exit == 0, screen);
        Assert.Contains('\u001b', screen);                                         // it was a terminal: live display
        int firstEpoch = screen.IndexOf("epoch 1/3", StringComparison.Ordinal);
        Assert.True(firstEpoch > 0, screen);
        string after = screen[firstEpoch..];
        // The data stages (decoding, cache writing) finished before training: their bars must not come back.
        Assert.DoesNotContain("cache-write", after);
        Assert.DoesNotMatch(@"\bdecode\b", after);
        Assert.Contains("epoch 3/3", after);
    }

    [GeneratedRegex(@"^epoch \d+/\d+  step \d+  train loss [\d.]+ \(kl [\d.]+\)(  val loss .*dB\))?  [\d.]+s(  ★ best)?\r?$")]
    private static partial Regex EpochLine();
}
