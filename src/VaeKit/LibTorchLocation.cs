using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace VaeKit;

/// <summary>
/// Runs VaeKit on the libtorch of an existing PyTorch install (<c>--libtorch DIR</c> or <c>VAEKIT_LIBTORCH</c>)
/// instead of the CPU libtorch that ships with the TorchSharp-cpu package: a PyTorch user's CUDA build then drives
/// the GPU with no multi-gigabyte CUDA NuGet download.
/// </summary>
/// <remarks>
/// TorchSharp's native shim (libLibTorchSharp.so) links against libtorch by soname. Loading that install's libc10,
/// libtorch_cpu, libc10_cuda, libtorch_cuda and libtorch by full path first makes the dynamic loader bind the shim to
/// them: an already loaded library satisfies a later dependency, or a by-name load, with the same soname. That
/// includes TorchSharp's own probes for torch_cpu / torch_cuda, as long as the application folder has no copy of its
/// own for .NET's probing to find first (a DllImport resolver does not intercept those probes: tried, and the
/// bundled copy still loaded). Hence the external build (<c>-p:LibTorch=external</c>) and the refusal below. Must run
/// before the first TorchSharp call of the process.
/// </remarks>
public static class LibTorchLocation
{
    private static readonly string[] Order = ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"];

    /// <summary>The folder that was loaded, once <see cref="Use"/> succeeded.</summary>
    public static string? Loaded { get; private set; }

    /// <summary>
    /// Loads libtorch from <paramref name="location"/>: a folder holding libtorch_cpu.so, a folder with such a lib/
    /// below it (the <c>torch</c> package folder, a libtorch download), or <c>python</c> to ask
    /// <c>python3 -c "import torch"</c> where its install is.
    /// </summary>
    public static void Use(string location)
    {
        if (Loaded is not null) return;
        string dir = Resolve(location);
        if (BundledLibTorch() is string bundled && bundled != dir)
            throw new BadInputException(
                $"{Settings.Runtime.LibTorch} {location}: this VaeKit build carries its own CPU libtorch ({bundled}), and TorchSharp would load " +
                $"it beside the one asked for, which libtorch does not survive. Build or publish VaeKit with " +
                $"-p:LibTorch=external to leave the bundled copy out (docs/gpu.md).");
        foreach (var file in Order)
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path))
            {
                if (file is "libc10_cuda.so" or "libtorch_cuda.so") continue;   // a CPU-only PyTorch
                throw new BadInputException($"{Settings.Runtime.LibTorch} {location}: {path} is missing; that is not a complete libtorch.");
            }
            try
            {
                NativeLibrary.Load(path);   // kept loaded for the life of the process
            }
            catch (DllNotFoundException e)
            {
                throw new BadInputException($"{Settings.Runtime.LibTorch} {location}: cannot load {path}: {e.Message.Split('\n')[0]}", e);
            }
        }
        Loaded = dir;
    }

    /// <summary>The folder of the CPU libtorch that came with the TorchSharp-cpu package, if this build has one.</summary>
    public static string? BundledLibTorch()
    {
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") })
            if (File.Exists(Path.Combine(dir, "libtorch_cpu.so")))
                return Path.GetFullPath(dir).TrimEnd('/');
        return null;
    }

    private static string Resolve(string location)
    {
        if (string.IsNullOrWhiteSpace(location)) throw new BadInputException($"{Settings.Runtime.LibTorch} needs a folder (or 'python').");
        if (location == "python") location = AskPython();
        foreach (var candidate in new[] { location, Path.Combine(location, "lib") })
            if (File.Exists(Path.Combine(candidate, "libtorch_cpu.so")))
                return Path.GetFullPath(candidate).TrimEnd('/');
        throw new BadInputException(
            $"{Settings.Runtime.LibTorch} {location}: no libtorch_cpu.so there or in its lib/ folder. Give PyTorch's torch/lib folder, e.g. " +
            $"$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib, or 'python'.");
    }

    private static string AskPython()
    {
        var start = new ProcessStartInfo("python3", ["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        try
        {
            using var python = Process.Start(start)!;
            string output = python.StandardOutput.ReadToEnd().Trim();
            string error = python.StandardError.ReadToEnd().Trim();
            python.WaitForExit();
            if (python.ExitCode != 0 || output.Length == 0)
                throw new BadInputException($"{Settings.Runtime.LibTorch} python: python3 could not import torch ({error.Split('\n').LastOrDefault()}).");
            return output;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BadInputException($"{Settings.Runtime.LibTorch} python: no python3 on PATH.", e);
        }
    }
}
