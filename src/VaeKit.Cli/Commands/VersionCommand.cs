using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;
using Spectre.Console;
using TorchSharp;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae --version</c>: VaeKit's version and the git commit it was built from (the SDK's SourceRevisionId, carried in
/// the informational version), TorchSharp's and libtorch's versions, the libtorch folder this process mapped, and the
/// device <c>--device auto</c> would pick.
/// </summary>
internal static class VersionCommand
{
    public static IReadOnlyList<string> Lines()
    {
        string informational = typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?";
        int plus = informational.IndexOf('+');
        string version = plus < 0 ? informational : informational[..plus];
        string commit = plus < 0 ? "unknown (built outside a git clone)" : informational[(plus + 1)..];
        bool cudaAvailable = torch.cuda.is_available();   // loads libtorch: the folder below is the one this process uses
        string device = cudaAvailable
            ? $"cuda ({torch.cuda.device_count()} device{(torch.cuda.device_count() == 1 ? "" : "s")})"
            : "cpu (this libtorch has no usable CUDA device)";
        return
        [
            $"VaeKit {version}",
            $"commit {commit}",
            $"TorchSharp {typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?"}, libtorch {torch.__version__}",
            $"libtorch loaded from {TorchRuntime.LoadedLibTorch() ?? "?"}",
            $"device (--device auto): {device}",
        ];
    }

    /// <summary>Replaces System.CommandLine's default --version action (which prints only the informational version).</summary>
    internal sealed class PrintVersion(IAnsiConsole console) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            foreach (var line in Lines())
                console.Profile.Out.Writer.WriteLine(line);
            return ExitCodes.Ok;
        }
    }
}
