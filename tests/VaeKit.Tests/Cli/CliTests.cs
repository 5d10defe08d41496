using VaeKit.Cli;
using System.Text.Json;
using VaeKit.Config;

namespace VaeKit.Tests.Cli;

public class CliTests
{
    [Theory]
    [InlineData("bench-s", 675_363)]
    [InlineData("bench-m", 10_826_563)]
    public void Info_json_reports_the_bench_parameter_counts(string preset, long expected)
    {
        var (exit, output, _) = CliRunner.Run("info", "--preset", preset, "--json");
        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        Assert.Equal(expected, json.RootElement.GetProperty("params").GetInt64());
        Assert.True(json.RootElement.GetProperty("layers").GetArrayLength() > 5);
    }

    [Fact]
    public void Info_table_lists_layers_with_shapes()
    {
        var (exit, output, _) = CliRunner.Run("info", "--preset", "tiny");
        Assert.Equal(0, exit);
        Assert.Contains("project_latent", output);
        Assert.Contains("32 × 4 × 4", output);        // bottleneck of the tiny preset: 32 channels at 4×4
        Assert.Contains("225,427", output);
    }

    [Fact]
    public void Flags_override_the_preset()
    {
        var (exit, output, _) = CliRunner.Run("info", "--preset", "bench-s", "--model", "ae", "--latent", "8", "--widths", "8,16", "--image-size", "16", "--json");
        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        var model = json.RootElement.GetProperty("model");
        Assert.Equal("ae", model.GetProperty("kind").GetString());
        Assert.Equal(8, model.GetProperty("latent").GetInt32());
        Assert.Equal(16, model.GetProperty("image_size").GetInt32());
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["train", "--data", "/no/such/folder"], "/no/such/folder" },
        { ["train", "--image-size", "30"], "--image-size 30" },
        { ["train", "--preset", "huge"], "Unknown preset 'huge'" },
        { ["train", "--widths", "16,x"], "--widths '16,x'" },
        { ["train", "--batch-size", "1"], "--batch-size" },
        { ["train", "--lr", "-1"], "--lr" },
        { ["train", "--device", "tpu"], "Unknown --device 'tpu'" },
        { ["train", "--epochs", "many"], "many" },
        { ["train", "--no-such-flag"], "--no-such-flag" },
        { ["train", "--resume", "/no/such/run"], "/no/such/run" },
        { ["sample", "--run", "/no/such/run"], "/no/such/run" },
        { ["sample"], "--run" },
        { ["train", "--resume-from", "best"], "--resume DIR" },
        { ["train", "--runs-dir", ""], "--runs-dir" },
        { ["sample", "--run", ""], "run directory is empty" },
        { ["reconstruct", "--run", "/no/such/run"], "/no/such/run" },
        // Messages written over several lines keep their settings typed: flags, never config.json names, reach the user.
        { ["train", "--kl-schedule", "banana"], "error: --kl-schedule 'banana' is not understood: use constant" },
        { ["train", "--model", "nope"], "error: --model 'nope' is not a known model family (ae, sigma-vae, vae, vq-vae)." },
        { ["train", "--model", "vq-vae", "--model-option", "layout=grid", "--latent", "40"], "got --latent 40: use --latent 32 or 48." },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_gets_one_clear_message_and_exit_code_2(string[] args, string mentioned)
    {
        var (exit, _, error) = CliRunner.Run(args);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains(mentioned, error);
        Assert.DoesNotContain("   at ", error);          // no stack trace
        Assert.StartsWith("error:", error);
    }

    /// <summary>A family option that is wrong or unknown is named once, as the user typed it, never as a garbled
    /// <c>--model-option.KEY</c>; ae and vae, which have no options, refuse one instead of ignoring it.</summary>
    [Theory]
    [InlineData(new[] { "--model", "vq-vae", "--model-option", "code_dim=3", "--latent", "8" }, "error: --model-option code_dim must divide the latent size 8 (got 3).")]
    [InlineData(new[] { "--model", "sigma-vae", "--model-option", "sigma=banana" }, "error: --model-option sigma must be optimal or learned (got 'banana').")]
    [InlineData(new[] { "--model", "vae", "--model-option", "foo=bar" }, "error: --model-option foo is not an option of vae")]
    [InlineData(new[] { "--model", "ae", "--model-option", "sigma=learned" }, "error: --model-option sigma is not an option of ae")]
    [InlineData(new[] { "--model", "vq-vae", "--model-option", "layout=banana" }, "error: --model-option layout must be one of flat, grid (got 'banana').")]
    [InlineData(new[] { "--model", "vq-vae", "--model-option", "codebok=8" }, "error: --model-option codebok is not a vq-vae option; its options are codebook, code_dim")]
    public void A_bad_family_option_is_named_as_typed_and_refused(string[] flags, string message)
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run(["train", "--data", "synthetic:64", "--max-steps", "1", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"], .. flags]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.StartsWith(message, error);
        Assert.DoesNotContain("--model-option.", error);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void An_empty_folder_is_bad_input()
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("train", "--data", dir.Path, "--runs-dir", dir["runs"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains(dir.Path, error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir["runs"]));   // no run directory for a run that cannot start
    }

    [Fact]
    public void A_runs_dir_that_is_a_file_is_bad_input_before_any_decoding()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["runs"], "");
        var (exit, _, error) = CliRunner.Run("train", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("is a file", error);
        Assert.False(Directory.Exists(dir["cache"]));
    }

    [Fact]
    public void An_image_size_the_synthetic_faces_cannot_take_is_bad_input()
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("train", "--image-size", "512", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("512", error);
    }

    [Fact]
    public void Resuming_from_a_damaged_checkpoint_is_bad_input_with_a_way_out()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["run/checkpoints"]);
        File.WriteAllBytes(dir["run/checkpoints/last.ckpt"], [.. "VAEKIT-CKPT"u8, 1, 0, 0, 0, .. "garbage that is not a header"u8]);
        var (exit, _, error) = CliRunner.Run("train", "--resume", dir["run"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("--resume-from best", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Help_shows_defaults()
    {
        var (exit, output, _) = CliRunner.Run("train", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("--kl-weight", output);
        Assert.Contains("[default: 1]", output);
        Assert.Contains("[default: tiny]", output);
    }
}
