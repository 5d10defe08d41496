using TorchSharp;
using System.Diagnostics;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace VaeKit.Benchmarks;

/// <summary>What the machine can do and what the process uses: measured matmul peak, peak RSS, GPU memory.</summary>
internal static class Machine
{
    /// <summary>
    /// Achieved GFLOP/s of an n×n by n×n matmul in <paramref name="dtype"/> on <paramref name="device"/> (median of
    /// several timed runs after warm-up): the practical ceiling the model's convolutions are compared with.
    /// </summary>
    public static double MatmulGflops(Device device, ScalarType dtype, int n, int repeats = 7)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var a = randn([n, n], device: device).to(dtype);
        var b = randn([n, n], device: device).to(dtype);
        var times = new List<double>();
        for (int i = 0; i < repeats + 2; i++)
        {
            Synchronize(device);
            var clock = Stopwatch.StartNew();
            using (var c = a.matmul(b)) Synchronize(device);
            if (i >= 2) times.Add(clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / Median(times) / 1e9;
    }

    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Peak resident set size of this process (VmHWM), bytes; null where /proc is missing.</summary>
    public static long? PeakRssBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        return null;
    }

    /// <summary>
    /// Memory in use on GPU <paramref name="index"/> according to the driver (NVML): libtorch's caching allocator
    /// keeps what it once needed, so after a run this is its peak reservation plus the CUDA context. Null when NVML
    /// is not there (no NVIDIA driver).
    /// </summary>
    public static long? GpuMemoryUsedBytes(int index) => GpuMemoryInfo(index)?.Used;

    /// <summary>Free, total and used bytes of GPU <paramref name="index"/> per the driver (NVML); null without NVML.</summary>
    public static (long Free, long Total, long Used)? GpuMemoryInfo(int index)
    {
        try
        {
            if (nvmlInit_v2() != 0) return null;
            try
            {
                if (nvmlDeviceGetHandleByIndex_v2((uint)index, out var handle) != 0) return null;
                return nvmlDeviceGetMemoryInfo(handle, out var memory) == 0 ? ((long)memory.Free, (long)memory.Total, (long)memory.Used) : null;
            }
            finally
            {
                nvmlShutdown();
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory { public ulong Total; public ulong Free; public ulong Used; }

    [DllImport("libnvidia-ml.so.1")] private static extern int nvmlInit_v2();
    [DllImport("libnvidia-ml.so.1")] private static extern int nvmlShutdown();
    [DllImport("libnvidia-ml.so.1")] private static extern int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);
    [DllImport("libnvidia-ml.so.1")] private static extern int nvmlDeviceGetMemoryInfo(IntPtr device, out NvmlMemory memory);
}
