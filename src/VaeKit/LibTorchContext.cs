using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace VaeKit;

/// <summary>
/// libtorch's process-wide switches in <c>at::globalContext()</c> that TorchSharp 0.107 does not expose
/// (its <c>use_deterministic_algorithms</c> is not implemented in the binding): deterministic algorithms and cuDNN's
/// benchmark and deterministic modes. They are called through libtorch_cpu's exported C++ symbols (Itanium mangling,
/// member functions taking the context as their first argument), resolved in the libtorch_cpu.so this process has
/// loaded. The names carry only <c>bool</c>/<c>int</c> arguments, so they are the same under both C++ string ABIs;
/// they exist in libtorch 1.13 and 2.10 (checked with <c>nm -D</c>). A libtorch without them gives a clear error.
/// </summary>
public static class LibTorchContext
{
    private const string GlobalContext = "_ZN2at13globalContextEv";                                  // at::globalContext()
    private const string SetDeterministicAlgorithms = "_ZN2at7Context26setDeterministicAlgorithmsEbb"; // (bool, bool warn_only)
    private const string GetDeterministicAlgorithms = "_ZNK2at7Context23deterministicAlgorithmsEv";
    private const string SetBenchmarkCuDnn = "_ZN2at7Context17setBenchmarkCuDNNEb";
    private const string GetBenchmarkCuDnn = "_ZNK2at7Context14benchmarkCuDNNEv";
    private const string SetDeterministicCuDnn = "_ZN2at7Context21setDeterministicCuDNNEb";
    private const string GetDeterministicCuDnn = "_ZNK2at7Context18deterministicCuDNNEv";

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate IntPtr ContextFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void SetFlagFn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate void SetFlagsFn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value, [MarshalAs(UnmanagedType.U1)] bool warnOnly);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)][return: MarshalAs(UnmanagedType.U1)] private delegate bool GetFlagFn(IntPtr context);

    private static readonly Lazy<IntPtr> Library = new(LoadLibrary);

    /// <summary>
    /// Deterministic algorithms on (libtorch picks deterministic kernels; one without a deterministic version prints a
    /// warning once rather than failing the run), cuDNN deterministic on and its benchmark mode (autotuning) off.
    /// On CUDA it also sets CUBLAS_WORKSPACE_CONFIG=:4096:8 (unless already set), which deterministic cuBLAS needs; it
    /// must be called before the first CUDA matmul.
    /// </summary>
    /// <exception cref="InvalidOperationException">the loaded libtorch does not export the switches.</exception>
    public static void UseDeterministic()
    {
        if (Environment.GetEnvironmentVariable("CUBLAS_WORKSPACE_CONFIG") is null)
        {
            // .NET keeps its own copy of the environment on Unix; libtorch reads the C library's.
            setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
            Environment.SetEnvironmentVariable("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
        }
        SetDeterministic(true);
    }

    /// <summary>Deterministic algorithms (warn-only) and cuDNN deterministic on or off; on also turns cuDNN benchmark off.</summary>
    public static void SetDeterministic(bool on)
    {
        var context = Context();
        Export<SetFlagsFn>(SetDeterministicAlgorithms)(context, on, true);
        Export<SetFlagFn>(SetDeterministicCuDnn)(context, on);
        if (on) Export<SetFlagFn>(SetBenchmarkCuDnn)(context, false);
    }

    /// <summary>cuDNN benchmark mode: autotune convolution algorithms per input shape (PyTorch's
    /// <c>torch.backends.cudnn.benchmark</c>; off by default). No effect on the CPU.</summary>
    public static bool BenchmarkCuDnn
    {
        get => Export<GetFlagFn>(GetBenchmarkCuDnn)(Context());
        set => Export<SetFlagFn>(SetBenchmarkCuDnn)(Context(), value);
    }

    /// <summary>Whether libtorch's deterministic-algorithms switch is on (<c>torch.are_deterministic_algorithms_enabled()</c>).</summary>
    public static bool DeterministicAlgorithms => Export<GetFlagFn>(GetDeterministicAlgorithms)(Context());

    /// <summary>Whether cuDNN is restricted to deterministic algorithms (<c>torch.backends.cudnn.deterministic</c>).</summary>
    public static bool DeterministicCuDnn => Export<GetFlagFn>(GetDeterministicCuDnn)(Context());

    private static IntPtr Context() => Export<ContextFn>(GlobalContext)();

    private static T Export<T>(string symbol) where T : Delegate =>
        NativeLibrary.TryGetExport(Library.Value, symbol, out var address)
            ? Marshal.GetDelegateForFunctionPointer<T>(address)
            : throw new InvalidOperationException(
                $"The loaded libtorch ({TorchRuntime.LoadedLibTorch() ?? "libtorch_cpu.so"}) does not export {symbol}, which the " +
                "deterministic and cuDNN switches call; this libtorch version is not supported for them.");

    private static IntPtr LoadLibrary()
    {
        _ = get_num_threads();   // makes TorchSharp load its libtorch first
        foreach (var folder in (TorchRuntime.LoadedLibTorch() ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
            if (NativeLibrary.TryLoad(Path.Combine(folder, "libtorch_cpu.so"), out var handle))
                return handle;
        if (NativeLibrary.TryLoad("libtorch_cpu.so", out var loaded)) return loaded;
        throw new InvalidOperationException("libtorch_cpu.so is not loaded in this process, so libtorch's global switches cannot be reached.");
    }

    [DllImport("libc.so.6")]
    private static extern int setenv(string name, string value, int overwrite);
}
