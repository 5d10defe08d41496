using VaeKit.Cli;
using System.Text;
using System.Text.Json.Nodes;
using VaeKit.Cli.Commands;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Tracking;

/// <summary><c>vae train --wandb</c> and <c>vae wandb sync</c> as a user runs them, against the fake W&amp;B server.</summary>
[Trait("Category", "Slow")]
public class WandbCliTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private const string Key = WandbClientTests.Key;

    private static string[] Train(TempDir dir, string runs, string name, params string[] extra) =>
        ["train", "--data", "synthetic:160", "--widths", "4,8", "--latent", "4", "--epochs", "2", "--batch-size", "32",
         "--log-every", "1", "--name", name, "--runs-dir", runs, "--cache-dir", dir["cache"], "--threads", "2", .. extra];

    [Fact]
    public void Online_run_shows_everything_offline_plus_sync_gives_the_same_history_and_the_key_never_lands_on_disk()
    {
        using var dir = new TempDir();
        using var online = new FakeWandbServer(Key);
        using var timing = new TimingScope();
        (int Exit, string Out, string Err) result;
        using (new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", online.BaseUrl), ("WANDB_MODE", null), ("WANDB_PROJECT", "vae-e2e")))
            result = CliRunner.Run(Train(dir, dir["runs"], "tracked", "--wandb", "--wandb-tags", "vae,e2e", "--lr", "0.003"));
        Assert.True(result.Exit == 0, result.Out + result.Err);
        log.WriteLine(result.Out);

        string url = $"{online.BaseUrl}/fake-entity/vae-e2e/runs/{online.RunName}";
        Assert.Contains($"W&B run: {url}", result.Out);                                  // at start
        Assert.Contains($"W&B run finished (exit code 0): {url}", result.Out);           // at the end
        Assert.Empty(online.Violations);
        Assert.Empty(online.ImageProblems());
        Assert.Equal("tracked", online.DisplayName);
        Assert.Equal(["vae", "e2e"], online.Tags);
        Assert.Equal(0.003, online.Config!["train"]!["learning_rate"]!.GetValue<double>(), 9);
        Assert.True(online.Config["parameters"]!.GetValue<long>() > 0);

        var rows = online.Rows();
        var steps = rows.Select(r => r["_step"]!.GetValue<long>()).ToList();
        Assert.Equal(Enumerable.Range(1, steps.Count).Select(i => (long)i), steps);    // every step, in order, once
        foreach (var key in new[] { "train/loss", "train/reconstruction", "train/kl", "train/mse", "train/kl_weight", "train/lr", "train/img_per_sec" })
            Assert.All(rows, r => Assert.NotNull(r[key]));
        var epochRows = rows.Where(r => r["val/loss"] is not null).ToList();
        Assert.Equal(2, epochRows.Count);
        Assert.All(epochRows, r => Assert.Equal("image-file", r["images/reconstruction"]!["_type"]!.GetValue<string>()));
        Assert.Equal(4, online.Put.Count);                                               // two grids per epoch
        var summary = FakeWandbServer.ParseLine(online.Summary!);
        Assert.Equal(epochRows.Min(r => r["val/loss"]!.GetValue<double>()), summary["val/best_loss"]!.GetValue<double>());
        Assert.True(summary["parameters"]!.GetValue<long>() > 0);
        Assert.Equal(steps[^1], summary["_step"]!.GetValue<long>());
        Assert.True(online.Complete);
        Assert.Equal(0, online.ExitCode);

        // Offline: nothing leaves the machine; sync later sends the same history.
        using var later = new FakeWandbServer(Key);
        using (new EnvScope(("WANDB_API_KEY", null), ("WANDB_BASE_URL", later.BaseUrl), ("WANDB_MODE", "offline"), ("WANDB_PROJECT", "vae-e2e")))
            result = CliRunner.Run(Train(dir, dir["offline-runs"], "tracked", "--wandb", "--lr", "0.003"));
        Assert.True(result.Exit == 0, result.Out + result.Err);
        Assert.Contains("vae wandb sync", result.Out);
        Assert.Equal(0, later.FileStreamPosts + later.Upserts);

        string offlineRun = Path.Combine(dir["offline-runs"], "tracked");
        using (new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", later.BaseUrl), ("WANDB_MODE", null)))
        {
            result = CliRunner.Run("wandb", "sync", offlineRun);
            Assert.True(result.Exit == 0, result.Out + result.Err);
            Assert.Contains($"synced {steps.Count} new row(s)", result.Out);
            result = CliRunner.Run("wandb", "sync", offlineRun);
            Assert.Contains("synced 0 new row(s)", result.Out);
        }
        Assert.Empty(later.Violations);
        Assert.Empty(later.ImageProblems());
        Assert.True(later.Complete);
        Assert.Equal(0, later.ExitCode);
        Assert.Equal(Comparable(online), Comparable(later));

        // --resume continues the same W&B run after its last step.
        string onlineRun = Path.Combine(dir["runs"], "tracked");
        using (new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", online.BaseUrl), ("WANDB_MODE", null)))
            result = CliRunner.Run("train", "--resume", onlineRun, "--epochs", "3", "--wandb");
        Assert.True(result.Exit == 0, result.Out + result.Err);
        Assert.DoesNotContain("ignoring", result.Out);
        Assert.Empty(online.Violations);                                                  // same run ID, no gap, _step still increasing
        Assert.Empty(online.ImageProblems());
        var resumed = online.Rows();
        Assert.Equal(3, resumed.Count(r => r["val/loss"] is not null));
        Assert.Equal(Enumerable.Range(1, resumed.Count).Select(i => (long)i), resumed.Select(r => r["_step"]!.GetValue<long>()));
        Assert.True(online.Complete);

        // The key is in no file either run wrote, nor in anything printed.
        string basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + Key));
        var files = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).Where(f => !f.StartsWith(dir["cache"])).ToList();
        Assert.Contains(files, f => f.EndsWith("wandb/history.jsonl"));
        Assert.Contains(files, f => f.EndsWith("report.html"));
        foreach (var file in files)
        {
            string content = Encoding.Latin1.GetString(File.ReadAllBytes(file));
            Assert.False(content.Contains(Key) || content.Contains(basic), $"the API key is in {file}");
        }
        Assert.DoesNotContain(Key, result.Out + result.Err);
    }

    [Fact]
    public void A_wrong_key_stops_before_training_with_one_clear_error()
    {
        using var dir = new TempDir();
        using var server = new FakeWandbServer("the-right-key-0123456789012345678901234567890");
        using var timing = new TimingScope();
        using var env = new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", server.BaseUrl), ("WANDB_MODE", null));
        var (exit, output, error) = CliRunner.Run(Train(dir, dir["runs"], "refused", "--wandb"));
        Assert.Equal(2, exit);
        Assert.StartsWith("error: W&B at ", error);
        Assert.Contains("refused the API key", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain(Key, output + error);
        Assert.False(Directory.Exists(dir["runs/refused"]));
    }

    [Fact]
    public void A_diverged_run_finishes_on_wandb_with_a_non_zero_exit_code()
    {
        using var dir = new TempDir();
        using var server = new FakeWandbServer(Key);
        using var timing = new TimingScope();
        using var env = new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", server.BaseUrl), ("WANDB_MODE", null));
        var (exit, output, error) = CliRunner.Run(Train(dir, dir["runs"], "nan", "--wandb", "--lr", "1e9", "--warmup", "0", "--grad-clip", "0", "--schedule", "constant"));
        Assert.Equal(1, exit);
        Assert.Contains("diverged", output + error);
        Assert.True(server.Complete);
        Assert.Equal(1, server.ExitCode);
        Assert.Empty(server.Violations);
    }

    [Fact]
    public void The_stop_button_on_the_run_page_interrupts_training_and_the_run_ends_on_wandb()
    {
        using var dir = new TempDir();
        using var server = new FakeWandbServer(Key) { Stopped = true };   // every file_stream reply says "stopped"
        using var timing = new TimingScope();
        using var env = new EnvScope(("WANDB_API_KEY", Key), ("WANDB_BASE_URL", server.BaseUrl), ("WANDB_MODE", null));
        var (exit, output, error) = CliRunner.Run(
            "train", "--data", "synthetic:160", "--widths", "4,8", "--latent", "4", "--epochs", "300", "--batch-size", "32",
            "--log-every", "1", "--name", "stopped", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"], "--threads", "2", "--wandb");
        log.WriteLine(output + error);
        Assert.Equal(ExitCodes.Interrupted, exit);
        Assert.Contains("stopped from the run page", output);
        Assert.True(server.Complete);
        Assert.Equal(ExitCodes.Interrupted, server.ExitCode);
        Assert.Empty(server.Violations);
    }

    /// <summary>What both servers must agree on: every row's keys and values, except clock-derived ones.</summary>
    private static string Comparable(FakeWandbServer server)
    {
        string[] clocks = ["_runtime", "_timestamp", "train/img_per_sec", "epoch/seconds"];
        var rows = server.Rows().Select(r =>
        {
            var copy = (JsonObject)r.DeepClone();
            foreach (var key in clocks) copy.Remove(key);
            return copy.ToJsonString();
        });
        return string.Join("\n", rows);
    }

    /// <summary>Sets environment variables (null removes) for the test's duration; tests run one at a time.</summary>
    internal sealed class EnvScope : IDisposable
    {
        private readonly List<(string Name, string? Old)> _saved = [];

        public EnvScope(params (string Name, string? Value)[] values)
        {
            foreach (var (name, value) in values)
            {
                _saved.Add((name, Environment.GetEnvironmentVariable(name)));
                Environment.SetEnvironmentVariable(name, value);
            }
        }

        public void Dispose()
        {
            foreach (var (name, old) in _saved) Environment.SetEnvironmentVariable(name, old);
        }
    }

    /// <summary>The CLI's sender clock shortened for the test.</summary>
    private sealed class TimingScope : IDisposable
    {
        public TimingScope() => WandbOptions.TimingOverride = WandbClientTests.Fast;
        public void Dispose() => WandbOptions.TimingOverride = null;
    }
}
