using System.Diagnostics;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Training;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Benchmarks;

/// <summary>What <c>vae bench</c> runs: one model shape, one device, one batch size, one precision.</summary>
public sealed record BenchOptions
{
    /// <summary>Name of the model shape shown in the results (the preset it came from, e.g. bench-s).</summary>
    public required string Preset { get; init; }
    /// <summary>The model shape to benchmark.</summary>
    public required ModelConfig Model { get; init; }
    /// <summary>cpu, cuda or auto (cuda when the loaded libtorch has a GPU).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Images per training step.</summary>
    public int Batch { get; init; } = 64;
    /// <summary>Timed training steps (after <see cref="Warmup"/> untimed ones).</summary>
    public int Steps { get; init; } = 30;
    /// <summary>Untimed steps before the timed ones (allocator and kernel warm-up).</summary>
    public int Warmup { get; init; } = 5;
    /// <summary>Arithmetic of the training step (fp32, or bf16 with fp32 master weights).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;
    /// <summary>libtorch intra-op threads; null = one per core.</summary>
    public int? Threads { get; init; }
    /// <summary>Let CUDA matmuls use TF32 tensor cores; no effect on CPU.</summary>
    public bool Tf32 { get; init; } = true;
    /// <summary>bf16 only; null = on for CUDA.</summary>
    public bool? ChannelsLast { get; init; }
    /// <summary>Deterministic algorithms, cuDNN benchmark off (<c>--deterministic</c>).</summary>
    public bool Deterministic { get; init; }
    /// <summary>cuDNN benchmark mode on CUDA (<c>--cudnn-benchmark</c>).</summary>
    public bool CudnnBenchmark { get; init; }

    /// <summary>The adversarial and feature-matching weights and the discriminator's shape, as <c>vae train</c> takes
    /// them (only these fields are read); the discriminator takes part from the first step. Default: neither term.</summary>
    public TrainConfig Critics { get; init; } = new();

    /// <summary>Checks the options; throws <see cref="BadInputException"/> on a non-positive batch or step count, negative warm-up or an invalid model.</summary>
    public BenchOptions Validate()
    {
        if (Batch <= 0) throw new BadInputException($"{Settings.Bench.Batch} must be positive (got {Batch}).");
        if (Steps <= 0) throw new BadInputException($"{Settings.Bench.Steps} must be positive (got {Steps}).");
        if (Warmup < 0) throw new BadInputException($"{Settings.Bench.Warmup} must be 0 or more (got {Warmup}).");
        Model.Validate();
        return this;
    }
}

/// <summary>Numbers of one benchmark (snake_case in <c>--json</c>). Times are medians over timed windows.</summary>
public sealed record BenchResult
{
    /// <summary><see cref="BenchOptions.Preset"/> of the run.</summary>
    public required string Preset { get; init; }
    /// <summary>The device actually used (e.g. cpu, cuda).</summary>
    public required string Device { get; init; }
    /// <summary>fp32 or bf16.</summary>
    public required string Precision { get; init; }
    /// <summary>Whether the step ran in channels-last (NHWC) layout.</summary>
    public bool ChannelsLast { get; init; }
    /// <summary>Whether the run used libtorch's deterministic algorithms (<c>--deterministic</c>).</summary>
    public bool Deterministic { get; init; }
    /// <summary>Whether cuDNN's benchmark mode was on (<c>--cudnn-benchmark</c>).</summary>
    public bool CudnnBenchmark { get; init; }
    /// <summary>Images per training step.</summary>
    public int Batch { get; init; }
    /// <summary>libtorch intra-op threads in effect.</summary>
    public int Threads { get; init; }
    /// <summary>Parameters of the model (elements, all tensors).</summary>
    public long Parameters { get; init; }
    /// <summary>Parameters of the discriminator trained beside it (0 without one); its work is not in the GFLOP figures.</summary>
    public long DiscriminatorParameters { get; init; }
    /// <summary>The adversarial weight of the timed steps (0 = no adversarial term).</summary>
    public double AdversarialWeight { get; init; }
    /// <summary>The feature-matching weight of the timed steps (0 = none).</summary>
    public double FeatureMatchingWeight { get; init; }
    /// <summary>Training steps that were timed (warm-up excluded).</summary>
    public int TimedSteps { get; init; }
    /// <summary>Median wall time of one training step, milliseconds.</summary>
    public double StepMs { get; init; }
    /// <summary>Training throughput: <see cref="Batch"/> / step time, images per second.</summary>
    public double TrainImagesPerSecond { get; init; }
    /// <summary>Analytic work of one image's training step (<see cref="FlopCount"/>), GFLOP.</summary>
    public double TrainGflopPerImage { get; init; }
    /// <summary>Achieved training arithmetic rate: <see cref="TrainGflopPerImage"/> × images per second, GFLOP/s.</summary>
    public double AchievedGflops { get; init; }
    /// <summary>This machine's square-matmul rate in the benchmark's precision (8192³ on a GPU, 2048³ on a CPU).</summary>
    public double MatmulPeakGflops { get; init; }
    /// <summary><see cref="AchievedGflops"/> / <see cref="MatmulPeakGflops"/>, in [0, 1] in practice.</summary>
    public double PeakFraction { get; init; }
    /// <summary>Share of step time spent on data: CPU, waiting for the prefetch thread; GPU, the extra median step
    /// time of fresh batches over one reused batch (host time means nothing there: the host blocks wherever the
    /// launch queue is full).</summary>
    public double DataWaitFraction { get; init; }
    /// <summary>Forward-only (encode and decode) throughput in evaluation mode, images per second.</summary>
    public double InferenceImagesPerSecond { get; init; }
    /// <summary>Decoder-only throughput from N(0, I) latents, images per second.</summary>
    public double SamplingImagesPerSecond { get; init; }
    /// <summary>Peak resident memory of the process, bytes; null where the OS does not report it.</summary>
    public long? PeakRssBytes { get; init; }
    /// <summary>Device memory in use per the driver (NVML), caching allocator included; null off NVIDIA GPUs.</summary>
    public long? GpuMemoryUsedBytes { get; init; }
    /// <summary>Loss of the last timed step (a sanity check that training ran on finite numbers).</summary>
    public double FinalLoss { get; init; }
    /// <summary>Versions of vaekit, torchsharp, libtorch, dotnet and the OS (see <see cref="TorchRuntime.Versions"/>).</summary>
    public required IReadOnlyDictionary<string, string> Versions { get; init; }
}

/// <summary>
/// Steady-state training throughput of the real training path (the same <see cref="Trainer"/>, batch assembly and
/// read-back policy as <c>vae train</c>) on random images of the model's size, plus inference and sampling rates,
/// the achieved fraction of the machine's own matmul peak, and memory.
/// </summary>
public static class TrainBenchmark
{
    /// <summary>Steps per timed window on a GPU: the host reads the losses back once per window, as in training.</summary>
    private const int GpuWindow = TrainingRun.DeviceReadbackEvery;

    /// <summary>Builds the model, runs warm-up and timed training steps on random images, then measures inference and sampling; <paramref name="progress"/> receives one-line status messages.</summary>
    public static BenchResult Run(BenchOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.ResolveDevice(options.Device);
        TorchRuntime.SetTf32(device, options.Tf32);
        TorchRuntime.SetDeterminism(device, options.Deterministic, options.CudnnBenchmark);
        bool gpu = device.type == DeviceType.CUDA;
        var model = options.Model;

        manual_seed(0);
        using var images = RandomImages(Math.Max(4 * options.Batch, 256), model.ImageSize, model.InChannels, gpu ? device : CPU);
        using var net = Models.ModelFactory.Create(model);
        net.to(device);
        var train = new TrainConfig
        {
            BatchSize = options.Batch, WarmupSteps = 0, Schedule = LrSchedule.Constant, LearningRate = 1e-4,
            AdversarialWeight = options.Critics.AdversarialWeight, FeatureMatchingWeight = options.Critics.FeatureMatchingWeight,
            AdversarialLoss = options.Critics.AdversarialLoss, DiscriminatorLayers = options.Critics.DiscriminatorLayers,
            DiscriminatorWidth = options.Critics.DiscriminatorWidth, DiscriminatorNorm = options.Critics.DiscriminatorNorm,
        };
        int window = gpu ? GpuWindow : 1;
        int windows = Math.Max(1, (options.Steps + window - 1) / window);
        int warmupSteps = gpu ? Math.Max(options.Warmup, 2 * window) : options.Warmup;   // cuDNN picks its algorithms first
        long totalSteps = warmupSteps + (long)windows * window;
        using var trainer = new Trainer(net, train, totalSteps, options.Precision, options.ChannelsLast);

        progress?.Invoke($"training {warmupSteps} warm-up + {windows * window} timed steps, batch {options.Batch}" +
                         (gpu ? " (then the same with one batch reused, for the data share)" : ""));
        var stepTimes = new List<double>();
        double waited = 0, total = 0, lastLoss = double.NaN;
        int epoch = 0, next = 0;
        EpochPlan? plan = null;
        BatchPrefetcher? prefetch = null;
        try
        {
            Tensor NextBatch()
            {
                if (plan is null || next == plan.StepsPerEpoch)
                {
                    prefetch?.Dispose();
                    plan?.Dispose();
                    plan = new EpochPlan(images, options.Batch, seed: 1, epoch++, flip: true);
                    next = 0;
                    var current = plan;
                    prefetch = gpu || !BatchPrefetcher.Useful ? null : new BatchPrefetcher(i => current.Batch(i, device), 0, current.StepsPerEpoch);
                }
                int index = next++;
                return prefetch is not null ? prefetch.Next() : plan.Batch(index, device);
            }

            for (int i = 0; i < warmupSteps; i++)
                lastLoss = Step(trainer, NextBatch, gpu, 1).Loss;
            Machine.Synchronize(device);

            for (int w = 0; w < windows; w++)
            {
                var prefetchBefore = prefetch;
                var waitBefore = prefetch?.Waited ?? TimeSpan.Zero;
                var clock = Stopwatch.StartNew();
                var (loss, dataSeconds) = Step(trainer, NextBatch, gpu, window);
                double seconds = clock.Elapsed.TotalSeconds;
                // CPU: time blocked on the prefetcher (a window is one step; a new epoch's prefetcher starts at
                // zero), or spent making the batch without one. GPU: measured below.
                double wait = prefetch is null ? dataSeconds
                    : ReferenceEquals(prefetch, prefetchBefore) ? (prefetch.Waited - waitBefore).TotalSeconds
                    : prefetch.Waited.TotalSeconds;
                stepTimes.Add(seconds / window);
                waited += wait;
                total += seconds;
                lastLoss = loss;
            }

            if (gpu)
            {
                // The host runs ahead of a GPU and blocks in whichever call finds the launch queue full, so host time
                // spent in batch assembly says nothing. Instead: the same windows again with one batch reused; what
                // the real batches add to the median step is the data's share.
                using var fixedBatch = NextBatch();
                var fixedTimes = new List<double>();
                for (int w = 0; w < windows; w++)
                {
                    var clock = Stopwatch.StartNew();
                    Step(trainer, () => fixedBatch.alias(), gpu, window);
                    fixedTimes.Add(clock.Elapsed.TotalSeconds / window);
                }
                double withData = Machine.Median(stepTimes), without = Machine.Median(fixedTimes);
                waited = Math.Max(0, withData - without);
                total = withData;
            }
        }
        finally
        {
            prefetch?.Dispose();
            plan?.Dispose();
        }

        double stepSeconds = Machine.Median(stepTimes);
        double gflopPerImage = FlopCount.TrainStepPerImage(model) / 1e9;
        double achieved = gflopPerImage * options.Batch / stepSeconds;
        progress?.Invoke("measuring inference, sampling and the matmul peak");
        var (inference, sampling) = Inference(trainer.TwinModel ?? net, options.Batch, device, trainer.TwinModel is null ? null : ScalarType.BFloat16, trainer.ChannelsLast);
        var peakType = options.Precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        double peak = Machine.MatmulGflops(device, peakType, gpu ? 8192 : 2048);

        return new BenchResult
        {
            Preset = options.Preset,
            Device = device.ToString(),
            Precision = options.Precision.ToString().ToLowerInvariant(),
            ChannelsLast = trainer.ChannelsLast,
            Deterministic = options.Deterministic,
            CudnnBenchmark = options.CudnnBenchmark && !options.Deterministic,
            Batch = options.Batch,
            Threads = get_num_threads(),
            Parameters = net.ParameterCount,
            DiscriminatorParameters = trainer.Discriminator?.parameters().Sum(p => p.numel()) ?? 0,
            AdversarialWeight = train.AdversarialWeight,
            FeatureMatchingWeight = train.FeatureMatchingWeight,
            TimedSteps = stepTimes.Count * window,
            StepMs = stepSeconds * 1000,
            TrainImagesPerSecond = options.Batch / stepSeconds,
            TrainGflopPerImage = gflopPerImage,
            AchievedGflops = achieved,
            MatmulPeakGflops = peak,
            PeakFraction = achieved / peak,
            DataWaitFraction = total > 0 ? waited / total : 0,
            InferenceImagesPerSecond = inference,
            SamplingImagesPerSecond = sampling,
            PeakRssBytes = Machine.PeakRssBytes(),
            GpuMemoryUsedBytes = gpu ? Machine.GpuMemoryUsedBytes(device.index < 0 ? 0 : device.index) : null,
            FinalLoss = lastLoss,
            Versions = TorchRuntime.Versions(),
        };
    }

    /// <summary>
    /// <paramref name="count"/> training steps the way <c>vae train</c> takes them: on the CPU each step is read back
    /// at once, on a GPU the window is queued and read back together. Returns the last loss and the time spent
    /// getting batches.
    /// </summary>
    private static (double Loss, double DataSeconds) Step(Trainer trainer, Func<Tensor> nextBatch, bool deferred, int count)
    {
        var pending = new List<PendingStep>(count);
        var data = new Stopwatch();
        try
        {
            for (int i = 0; i < count; i++)
            {
                using var scope = NewDisposeScope();
                data.Start();
                using var x = nextBatch();
                data.Stop();
                if (!deferred)
                    return (trainer.BatchUpdate(x).Loss, data.Elapsed.TotalSeconds);
                pending.Add(trainer.BatchUpdateDeferred(x));
            }
            return (StepReadback.Resolve(pending, trainer.Config)[^1].Loss, data.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var p in pending) p.Dispose();
        }
    }

    /// <summary>
    /// Encode+decode and prior-sampling rates (evaluation mode, no gradients), median of timed runs. With
    /// <paramref name="lowPrecision"/> the model is the trainer's bf16 twin: inputs and codes are cast to bf16 (and laid
    /// out channels-last when the twin is), outputs cast back to fp32 inside the timed call, as a caller would need them.
    /// </summary>
    private static (double Inference, double Sampling) Inference(Models.VaeModel model, int batch, Device device,
                                                                 ScalarType? lowPrecision = null, bool channelsLast = false)
    {
        using var noGrad = no_grad();
        model.eval();
        var config = model.Config;
        using var x = rand([batch, config.InChannels, config.ImageSize, config.ImageSize], device: device);
        using var z = randn([batch, config.Latent], device: device);
        Tensor In(Tensor t)
        {
            if (lowPrecision is not ScalarType type) return t;
            var cast = t.to(type);
            return channelsLast && t.dim() == 4 ? cast.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : cast;
        }
        Tensor Out(Tensor t) => lowPrecision is null ? t : t.to(ScalarType.Float32);
        double Rate(Action run)
        {
            var times = new List<double>();
            for (int i = 0; i < 12; i++)
            {
                Machine.Synchronize(device);
                var clock = Stopwatch.StartNew();
                using (var scope = NewDisposeScope()) { run(); Machine.Synchronize(device); }
                if (i >= 2) times.Add(clock.Elapsed.TotalSeconds);
            }
            return batch / Machine.Median(times);
        }
        return (Rate(() => Out(model.call(In(x)).Reconstruction)), Rate(() => Out(model.Decode(In(z)))));
    }

    private static DecodedImages RandomImages(int count, int size, int channels, Device device)
    {
        using var generator = new Generator(17);
        using var pixels = randint(0, 256, [count, size, size, channels], generator: generator).to_type(ScalarType.Byte);
        return new DecodedImages(pixels.to(device));
    }
}
