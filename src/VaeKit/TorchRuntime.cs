using TorchSharp;
using static TorchSharp.torch;

namespace VaeKit;

/// <summary>Process-wide libtorch settings: threads and device choice.</summary>
public static class TorchRuntime
{
    /// <summary>Sets libtorch's intra-op thread count (process-wide); null = one per core.</summary>
    public static void SetThreads(int? threads)
    {
        if (threads is <= 0) throw new BadInputException($"{Settings.Runtime.Threads} must be positive (got {threads}).");
        torch.set_num_threads(threads ?? Environment.ProcessorCount);
    }

    /// <summary>Resolves "cpu", "cuda" (or "cuda:N") and "auto".</summary>
    public static Device ResolveDevice(string name)
    {
        var text = name.Trim().ToLowerInvariant();
        if (text == "cpu") return CPU;
        if (text == "auto") return cuda.is_available() ? CUDA : CPU;
        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new BadInputException(
                    $"CUDA was asked for ({Settings.Runtime.Device} cuda) but the libtorch this process loaded has no usable CUDA device " +
                    $"(this build ships the CPU libtorch). Use {Settings.Runtime.Device} cpu or auto.");
            return new Device(text);
        }
        throw new BadInputException($"Unknown {Settings.Runtime.Device} '{name}'. Use cpu, cuda or auto.");
    }

    /// <summary>
    /// TF32 tensor-core math for CUDA matmuls and convolutions (PyTorch's defaults: off for matmul, on for cuDNN).
    /// On makes both use it; off makes both exact fp32. No effect on CPU.
    /// </summary>
    public static void SetTf32(Device device, bool enabled)
    {
        if (device.type != DeviceType.CUDA) return;
        backends.cuda.matmul.allow_tf32 = enabled;
        backends.cudnn.allow_tf32 = enabled;
    }

    /// <summary>
    /// libtorch's determinism and cuDNN autotuning switches (process-wide): <paramref name="deterministic"/> turns on
    /// deterministic algorithms and cuDNN's deterministic mode with benchmark off; otherwise cuDNN benchmark is set to
    /// <paramref name="cudnnBenchmark"/> on CUDA. Nothing is touched on the CPU unless deterministic is asked for.
    /// Call before the first CUDA matmul.
    /// </summary>
    public static void SetDeterminism(Device device, bool deterministic, bool cudnnBenchmark)
    {
        try
        {
            if (deterministic) LibTorchContext.UseDeterministic();
            else if (device.type == DeviceType.CUDA && cudnnBenchmark) LibTorchContext.BenchmarkCuDnn = true;
        }
        catch (InvalidOperationException e)
        {
            throw new BadInputException($"{(deterministic ? Settings.Runtime.Deterministic : Settings.Runtime.CudnnBenchmark)} cannot be used with this libtorch: {e.Message}");
        }
    }

    /// <summary>Version strings recorded in config.json and checkpoints.</summary>
    public static IReadOnlyDictionary<string, string> Versions() => new Dictionary<string, string>
    {
        ["vaekit"] = typeof(TorchRuntime).Assembly.GetName().Version?.ToString(3) ?? "?",
        ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?",
        ["dotnet"] = Environment.Version.ToString(),
        ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        ["libtorch"] = LoadedLibTorch() ?? "?",
    };

    /// <summary>The libtorch_cpu.so files mapped into this process (one, unless something went badly wrong).</summary>
    public static string? LoadedLibTorch()
    {
        try
        {
            var paths = File.ReadLines("/proc/self/maps")
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(parts => parts.Length >= 6 && parts[^1].EndsWith("/libtorch_cpu.so", StringComparison.Ordinal))
                .Select(parts => Path.GetDirectoryName(parts[^1])!)
                .Distinct().ToList();
            return paths.Count > 0 ? string.Join(';', paths) : null;
        }
        catch (IOException) { return null; }
    }
}
