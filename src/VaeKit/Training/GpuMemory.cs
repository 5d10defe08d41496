using TorchSharp.Modules;
using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// An estimate of a training run's GPU memory, in bytes, and what it adds up from:
/// <list type="bullet">
/// <item>state: the fp32 weights, their gradients and AdamW's two moments (16 bytes per parameter); with bf16 also
/// the twin's bf16 weights and gradients of the conv and linear layers (4 more bytes per such parameter);</item>
/// <item>activations kept for the backward pass, per image, counted from one real forward pass (see
/// <see cref="GpuMemory.ActivationElementsPerImage"/>), 4 bytes each in fp32 and 2 in bf16, times the batch;</item>
/// <item>the decoded images when they live on the GPU (uint8), and a fixed allowance for the CUDA context;</item>
/// <item>all of it (but the context) times <see cref="GpuMemory.Fudge"/>: backward-pass temporaries, cuDNN
/// workspaces and the caching allocator's rounding, which the count does not see.</item>
/// </list>
/// </summary>
public sealed record MemoryEstimate(
    long Parameters, int BatchSize, Precision Precision, long StateBytes, long ActivationBytesPerImage,
    long DataBytes, long ContextBytes, long TotalBytes)
{
    /// <summary>Activations of the whole batch, before the fudge factor.</summary>
    public long ActivationBytes => ActivationBytesPerImage * BatchSize;
}

/// <summary>
/// GPU memory of training, estimated without a GPU (<see cref="MemoryEstimate"/>), and the clear message given when CUDA
/// runs out of memory: which batch size the estimate says fits in the free memory, and bf16.
/// Unmeasured against a GPU so far (issue 13 lists the measurement).
/// </summary>
public static class GpuMemory
{
    /// <summary>Multiplier on state, activations and data for what the count cannot see (stated, not fitted).</summary>
    public const double Fudge = 1.3;

    /// <summary>Allowance for the CUDA context and libtorch's kernels on the device (typically 0.3–0.6 GB).</summary>
    public const long ContextBytes = 512L << 20;

    /// <summary>
    /// Elements of activation memory that one image keeps alive for the backward pass, counted with forward hooks on a
    /// real forward pass in training mode: every conv, transposed conv and linear output (the next layer keeps it),
    /// and every normalisation output twice (the SiLU that follows keeps its input and its own output is kept by the
    /// next conv). The input image and the loss's few tensors are added.
    /// </summary>
    public static long ActivationElementsPerImage(ModelConfig config)
    {
        using var scope = NewDisposeScope();
        using var model = Models.ModelFactory.Create(config);
        long elements = 2L * config.InChannels * config.ImageSize * config.ImageSize;   // input and reconstruction
        var removers = new List<Action>();
        foreach (var (_, module) in model.named_modules())
        {
            int weight = module switch
            {
                Conv2d or ConvTranspose2d or Linear => 1,
                BatchNorm2d or GroupNorm => 2,
                _ => 0,
            };
            if (weight == 0) continue;
            if (module is not nn.Module<Tensor, Tensor> layer) continue;
            removers.Add(layer.register_forward_hook((_, _, output) =>
            {
                elements += weight * output.numel() / output.shape[0];
                return output;
            }).remove);
        }
        model.train();
        using (no_grad())
            model.call(rand(2, config.InChannels, config.ImageSize, config.ImageSize));   // BatchNorm needs two images in training
        foreach (var remove in removers) remove();
        return elements;
    }

    /// <summary>The estimate for training <paramref name="config"/> at <paramref name="batchSize"/>; <paramref name="dataBytes"/>
    /// are the decoded images uploaded to the GPU (0 when they stay in host memory).</summary>
    public static MemoryEstimate Estimate(ModelConfig config, int batchSize, Precision precision, long dataBytes = 0) =>
        Estimate(config, batchSize, precision, dataBytes, ParameterCounts(config), ActivationElementsPerImage(config));

    private static MemoryEstimate Estimate(ModelConfig config, int batchSize, Precision precision, long dataBytes,
                                           (long All, long Low) parameters, long activationElements)
    {
        long state = 16 * parameters.All + (precision == Precision.Bf16 ? 4 * parameters.Low : 0);
        long perImage = activationElements * (precision == Precision.Bf16 ? 2 : 4);
        long total = (long)(Fudge * (state + perImage * batchSize + dataBytes)) + ContextBytes;
        return new MemoryEstimate(parameters.All, batchSize, precision, state, perImage, dataBytes, ContextBytes, total);
    }

    /// <summary>
    /// The largest batch size (a multiple of 8, or 2 and 4 below that) whose estimate fits in
    /// <paramref name="freeBytes"/>; null when not even 2 fits.
    /// </summary>
    public static int? LargestBatchThatFits(ModelConfig config, Precision precision, long freeBytes, long dataBytes = 0)
    {
        var parameters = ParameterCounts(config);
        long activations = ActivationElementsPerImage(config);
        bool Fits(int batch) => Estimate(config, batch, precision, dataBytes, parameters, activations).TotalBytes <= freeBytes;
        if (!Fits(2)) return null;
        if (!Fits(8)) return Fits(4) ? 4 : 2;
        int low = 8, high = 16;
        while (high <= 1 << 16 && Fits(high)) { low = high; high *= 2; }
        while (high - low > 8)
        {
            int mid = (low + high) / 2 / 8 * 8;
            if (Fits(mid)) low = mid; else high = mid;
        }
        return low;
    }

    /// <summary>Whether <paramref name="e"/> is libtorch's CUDA out-of-memory error.</summary>
    public static bool IsOutOfMemory(Exception e) =>
        e.Message.Contains("CUDA out of memory", StringComparison.OrdinalIgnoreCase) ||
        e.Message.Contains("CUDA error: out of memory", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The one message for a run that ran out of GPU memory: what was asked, what the estimate says fits in
    /// <paramref name="freeBytes"/> (the device's memory, NVML's total: other processes' use is not subtracted; null when unknown), and what to
    /// change, its settings typed (the CLI names them by its flags).
    /// </summary>
    public static SettingText OutOfMemoryMessage(ModelConfig config, int batchSize, Precision precision, long? freeBytes, long dataBytes = 0)
    {
        var asked = Estimate(config, batchSize, precision, dataBytes);
        SettingText text = $"The GPU ran out of memory training at batch size {batchSize} ({Name(precision)}; estimated {Gib(asked.TotalBytes)} GiB).";
        if (freeBytes is not long free)
            return precision == Precision.Fp32 ? text.Then($" Lower {Settings.Train.BatchSize} or use {Settings.Runtime.Precision} bf16.")
                                               : text.Then($" Lower {Settings.Train.BatchSize}.");
        text = text.Then($" This GPU has {Gib(free)} GiB.");
        var fits = LargestBatchThatFits(config, precision, free, dataBytes);
        var fitsBf16 = precision == Precision.Fp32 ? LargestBatchThatFits(config, Precision.Bf16, free, dataBytes) : null;
        if (fits is int b && b < batchSize)
            text = text.Then($" The estimate says {Settings.Train.BatchSize} {b} fits");
        else if (fits is not null)
            text = text.Then($" The estimate says it should fit (another process may hold GPU memory); try a smaller {Settings.Train.BatchSize}");
        else
            text = text.Then($" Not even batch size 2 fits by the estimate; use a smaller model ({Settings.Model.Preset})");
        if (fitsBf16 is int c)
            text = text.Then($", or {Settings.Runtime.Precision} bf16 with {Settings.Train.BatchSize} {Math.Min(c, batchSize)}");
        return text.Then(SettingText.Plain("."));
    }

    private static (long All, long Low) ParameterCounts(ModelConfig config)
    {
        using var scope = NewDisposeScope();
        using var model = Models.ModelFactory.Create(config);
        var norms = model.named_modules().Where(m => m.module is BatchNorm2d or GroupNorm).Select(m => m.name).ToHashSet();
        long all = 0, low = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            all += p.numel();
            int dot = name.LastIndexOf('.');
            if (!norms.Contains(dot > 0 ? name[..dot] : "")) low += p.numel();
        }
        return (all, low);
    }

    private static string Name(Precision precision) => precision.ToString().ToLowerInvariant();

    /// <summary>Bytes as GiB with two decimals.</summary>
    public static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
}
