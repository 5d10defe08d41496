using System.Runtime.InteropServices;
using System.Text.Json;
using VaeKit.Config;
using VaeKit.Training;

namespace VaeKit.Tests.Training;

/// <summary>Issue 13's CPU-side preparation: the determinism switch, the memory estimate and the out-of-memory message.</summary>
[Collection("LibTorchGlobals")]
public class GpuPrepTests
{
    private static RunConfig SmallRun(string name, string cache, bool deterministic) => new()
    {
        Name = name,
        Model = new ModelConfig { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 },
        Train = new TrainConfig { Epochs = 2, BatchSize = 32, LearningRate = 5e-3, WarmupSteps = 3, LogEvery = 1, Seed = 3 },
        Data = new DataConfig { Source = "synthetic:200", Flip = true, CacheDirectory = cache },
        Runtime = new RuntimeConfig { Threads = 2, Deterministic = deterministic },
    };

    private static List<string> TrainRows(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "train")
            .Select(r => $"{r.GetProperty("step")} {r.GetProperty("loss")}")
            .ToList();

    private sealed class CancelAt(long step, CancellationTokenSource cancel) : IRunCallback
    {
        public void StepCompleted(StepReport report)
        {
            if (report.Metrics.Step == step) cancel.Cancel();
        }
    }

    [Fact]
    public void The_deterministic_switch_reaches_libtorch_and_reads_back()
    {
        try
        {
            LibTorchContext.UseDeterministic();
            Assert.True(LibTorchContext.DeterministicAlgorithms);
            Assert.True(LibTorchContext.DeterministicCuDnn);
            Assert.False(LibTorchContext.BenchmarkCuDnn);
            LibTorchContext.SetDeterministic(false);
            Assert.False(LibTorchContext.DeterministicAlgorithms);
            LibTorchContext.BenchmarkCuDnn = true;    // only a flag on the CPU
            Assert.True(LibTorchContext.BenchmarkCuDnn);
        }
        finally
        {
            LibTorchContext.SetDeterministic(false);
            LibTorchContext.BenchmarkCuDnn = false;
        }
    }

    [Fact]
    public void A_deterministic_run_interrupted_and_resumed_matches_one_that_never_stopped()
    {
        using var dir = new TempDir();
        try
        {
            var straight = TrainingRun.Train(SmallRun("straight", dir["cache"], true), dir["runs"], NullCallback.Instance, CancellationToken.None);
            Assert.True(LibTorchContext.DeterministicAlgorithms);
            using var cancel = new CancellationTokenSource();
            var stopped = TrainingRun.Train(SmallRun("stopped", dir["cache"], true), dir["runs"], new CancelAt(7, cancel), cancel.Token);
            Assert.Equal(RunOutcome.Interrupted, stopped.Outcome);
            var resumed = TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory }, NullCallback.Instance, CancellationToken.None);
            Assert.Equal(RunOutcome.Completed, resumed.Outcome);
            Assert.Equal(TrainRows(straight.Directory), TrainRows(resumed.Directory));
            Assert.Contains("\"deterministic\": true", File.ReadAllText(Path.Combine(resumed.Directory, "config.json")));
        }
        finally
        {
            LibTorchContext.SetDeterministic(false);
        }
    }

    /// <summary>Throws libtorch's CUDA out-of-memory error from inside the loop, as a failing allocation would.</summary>
    private sealed class OutOfMemoryAt(long step) : IRunCallback
    {
        public void StepCompleted(StepReport report)
        {
            if (report.Metrics.Step == step)
                throw new ExternalException("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 5.79 GiB total capacity)\nException raised from malloc at …");
        }
    }

    [Fact]
    public void Running_out_of_gpu_memory_ends_the_run_with_one_message_not_an_exception()
    {
        using var dir = new TempDir();
        var result = TrainingRun.Train(SmallRun("oom", dir["cache"], false), dir["runs"], new OutOfMemoryAt(2), CancellationToken.None);
        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.StartsWith("The GPU ran out of memory training at batch size 32 (fp32", result.Message?.ToString());
        Assert.Contains("train.batch_size", result.Message?.ToString());
        Assert.DoesNotContain("malloc", result.Message?.ToString());
        Assert.DoesNotContain('\n', result.Message!.ToString());
        Assert.Contains("\"reason\":\"failed\"", File.ReadAllText(Path.Combine(result.Directory, "metrics.jsonl")).Replace(" ", ""));
    }

    [Fact]
    public void The_message_names_the_batch_the_estimate_says_fits_and_bf16()
    {
        var large = Presets.Large;
        long sixGib = 6L << 30;
        int? fits = GpuMemory.LargestBatchThatFits(large, Precision.Fp32, sixGib);
        Assert.NotNull(fits);
        Assert.True(GpuMemory.Estimate(large, fits!.Value, Precision.Fp32).TotalBytes <= sixGib);
        Assert.True(GpuMemory.Estimate(large, fits.Value + 8, Precision.Fp32).TotalBytes > sixGib);

        int asked = fits.Value * 2;
        string message = GpuMemory.OutOfMemoryMessage(large, asked, Precision.Fp32, sixGib).ToString();
        Assert.Contains($"batch size {asked}", message);
        Assert.Contains($"train.batch_size {fits} fits", message);
        Assert.Contains("runtime.precision bf16", message);
        int? bf16 = GpuMemory.LargestBatchThatFits(large, Precision.Bf16, sixGib);
        Assert.True(bf16 > fits);   // bf16 halves activations

        string none = GpuMemory.OutOfMemoryMessage(large, 64, Precision.Fp32, 256L << 20).ToString();   // smaller than the CUDA context
        Assert.Contains("Not even batch size 2 fits", none);
    }

    [Fact]
    public void The_estimate_grows_with_the_batch_by_the_counted_activations()
    {
        var base64 = GpuMemory.Estimate(Presets.Base, 64, Precision.Fp32);
        var base128 = GpuMemory.Estimate(Presets.Base, 128, Precision.Fp32);
        Assert.Equal(6_745_155, base64.Parameters);
        Assert.Equal(16L * 6_745_155, base64.StateBytes);
        Assert.InRange(base128.TotalBytes - base64.TotalBytes, (long)(GpuMemory.Fudge * 64 * base64.ActivationBytesPerImage) - 1, (long)(GpuMemory.Fudge * 64 * base64.ActivationBytesPerImage) + 1);
        // Activations per image: at least every feature map of the 64 px encoder's first stage (32 × 64 × 64 floats, several kept)
        Assert.True(base64.ActivationBytesPerImage > 4 * 4L * 32 * 64 * 64);
        var bf16 = GpuMemory.Estimate(Presets.Base, 64, Precision.Bf16);
        Assert.Equal(base64.ActivationBytesPerImage / 2, bf16.ActivationBytesPerImage);
    }
}
