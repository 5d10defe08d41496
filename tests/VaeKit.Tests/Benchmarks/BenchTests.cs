using System.Diagnostics;
using System.Text.Json;
using VaeKit.Benchmarks;
using VaeKit.Cli;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Tests.Cli;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Benchmarks;

public class BenchTests
{
    [Fact]
    public void The_flop_count_matches_a_hand_count_of_a_small_model()
    {
        // 1×8×8 in, one stage of width 4, no blocks, latent 2 (AE: project_latent emits z numbers).
        var config = new ModelConfig { Kind = ModelKinds.Ae, InChannels = 1, ImageSize = 8, Widths = [4], Blocks = 0, Latent = 2 };
        double convIn = 2.0 * (4 * 8 * 8) * (1 * 3 * 3);      // conv_in 1→4, 3×3, on 8×8
        double projectLatent = 2.0 * 2 * 256;                 // 256 → 2
        double project = 2.0 * 256 * 2;                       // 2 → 256
        double convOut = 2.0 * (1 * 8 * 8) * (4 * 3 * 3);     // conv_out 4→1
        Assert.Equal(convIn + projectLatent + project + convOut, FlopCount.ForwardPerImage(config));

        // A stride-2 4×4 conv and its transposed mirror do the same work.
        var two = config with { ImageSize = 8, Widths = [4, 4] };
        double down = 2.0 * (4 * 4 * 4) * (4 * 4 * 4);       // 4→4 on 8×8 → 4×4
        double flat = 4 * 4 * 4;
        double expected = convIn + down + down + 2.0 * 2 * flat + 2.0 * flat * 2 + convOut;
        Assert.Equal(expected, FlopCount.ForwardPerImage(two));
        Assert.Equal(3 * expected, FlopCount.TrainStepPerImage(two));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Vae_bench_reports_consistent_numbers_as_json()
    {
        var (exit, output, error) = CliRunner.Run("bench", "--preset", "tiny", "--device", "cpu", "--batch", "16", "--steps", "3", "--warmup", "1", "--threads", "2", "--json");
        Assert.True(exit == 0, error);
        var r = JsonDocument.Parse(output).RootElement;
        Assert.Equal(225_427, r.GetProperty("parameters").GetInt64());
        Assert.Equal(3, r.GetProperty("timed_steps").GetInt32());
        double stepMs = r.GetProperty("step_ms").GetDouble(), rate = r.GetProperty("train_images_per_second").GetDouble();
        Assert.Equal(16 / (stepMs / 1000), rate, 6);
        double achieved = r.GetProperty("achieved_gflops").GetDouble(), peak = r.GetProperty("matmul_peak_gflops").GetDouble();
        Assert.Equal(rate * r.GetProperty("train_gflop_per_image").GetDouble(), achieved, 6);
        Assert.Equal(achieved / peak, r.GetProperty("peak_fraction").GetDouble(), 9);
        // No upper bound: the peak is measured in the same process, and on a loaded machine a depressed peak puts the
        // fraction above 1 (seen in CI under load: 1.51). Only its consistency with the other fields is behaviour.
        Assert.True(r.GetProperty("peak_fraction").GetDouble() > 0);
        Assert.InRange(r.GetProperty("data_wait_fraction").GetDouble(), 0, 1);
        Assert.True(r.GetProperty("inference_images_per_second").GetDouble() > 0);
        Assert.True(r.GetProperty("sampling_images_per_second").GetDouble() > 0);
        Assert.True(r.GetProperty("peak_rss_bytes").GetInt64() > 100L << 20);
        Assert.True(double.IsFinite(r.GetProperty("final_loss").GetDouble()));
        Assert.EndsWith("native", r.GetProperty("versions").GetProperty("libtorch").GetString());
    }

    [Fact]
    public void Bench_rejects_a_bad_batch_with_exit_2()
    {
        var (exit, _, error) = CliRunner.Run("bench", "--preset", "tiny", "--batch", "0");
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains("--batch", error);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Live_tensors_are_constant_from_step_to_step_and_rss_levels_off()
    {
        using var images = DecodedImages.Allocate(256, 32, 3);
        for (int i = 0; i < 256; i++) SyntheticFaces.Render(0, i, 32, images.ImageSpan(i));
        manual_seed(1);
        using var model = new AutoEncoder(Presets.Tiny);
        var train = new TrainConfig { BatchSize = 32 };
        using var trainer = new Trainer(model, train, 150);
        var live = new List<long>();
        var rss = new List<long>();
        for (int step = 0; step < 150; step++)
        {
            using (var plan = new EpochPlan(images, 32, 1, step / 8, flip: true))
            using (var scope = NewDisposeScope())
                trainer.BatchUpdate(plan.Batch(step % 8, CPU));
            // This thread's count: the process-wide one also moves when the finalizer thread collects tensors other
            // tests dropped, which says nothing about these steps.
            live.Add(TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            using var self = Process.GetCurrentProcess();
            rss.Add(self.WorkingSet64);
        }
        // Every step ends with exactly the tensors it started with (parameters, buffers, optimizer state, images).
        Assert.True(live.Skip(1).Distinct().Count() == 1, "live tensors drift: " + string.Join(",", live.Distinct().Take(10)));
        // glibc keeps freed blocks for reuse, so RSS rises for a while and then stays; a leak of one batch's
        // activations per step (~6 MB here) would add ~300 MB over the last 50 steps.
        long lastFifty = rss[^1] - rss[99];
        Assert.True(lastFifty < 100L << 20, $"RSS grew {lastFifty >> 20} MB over steps 100-150");
    }
}

/// <summary>--libtorch in a fresh process: the first TorchSharp call binds a process to one libtorch for good.</summary>
[Trait("Category", "Slow")]
public class LibTorchLocationTests
{
    private static (int Exit, string Out, string Err) Vae(params string[] args) =>
        VaeProcess.Run(args, new Dictionary<string, string?> { ["VAEKIT_LIBTORCH"] = null });

    [Fact]
    public void The_libtorch_folder_named_is_the_one_the_process_runs_on()
    {
        string bundled = LibTorchLocation.BundledLibTorch()!;
        var (exit, output, error) = Vae("bench", "--preset", "tiny", "--device", "cpu", "--batch", "8", "--steps", "1", "--warmup", "0", "--json", "--libtorch", bundled);
        Assert.True(exit == 0, error);
        Assert.Equal(bundled, JsonDocument.Parse(output).RootElement.GetProperty("versions").GetProperty("libtorch").GetString());
    }

    [Fact]
    public void A_folder_without_libtorch_and_a_second_libtorch_are_refused_with_exit_2()
    {
        using var dir = new TempDir();
        var (exit, _, error) = Vae("info", "--libtorch", dir.Path);
        Assert.Equal(2, exit);
        Assert.Contains("no libtorch_cpu.so", error);

        // A copy elsewhere would load beside the bundled one (libtorch aborts on double registration): refused.
        string bundled = LibTorchLocation.BundledLibTorch()!;
        foreach (var file in new[] { "libtorch_cpu.so", "libc10.so", "libtorch.so" })
            File.CreateSymbolicLink(Path.Combine(dir.Path, file), Path.Combine(bundled, file));
        (exit, _, error) = Vae("info", "--preset", "tiny", "--libtorch", dir.Path);
        Assert.Equal(2, exit);
        Assert.Contains("-p:LibTorch=external", error);
        Assert.DoesNotContain("   at ", error);
    }
}
