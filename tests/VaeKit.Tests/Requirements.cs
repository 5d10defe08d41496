using System.Diagnostics;
using VaeKit.Data;

namespace VaeKit.Tests;

/// <summary>
/// The system packages some tests use, named as Debian names them. tests/run installs all of them; bare
/// <c>dotnet test</c> skips each test whose package is missing, with a reason that names the package and its install
/// line. Under CI=true, or VAEKIT_TEST_PACKAGES=required (tests/run sets it), nothing is skipped for a missing package:
/// the test runs (and fails), and <see cref="RequirementsTests"/> fails once with every missing package and the line
/// that installs it.
/// </summary>
public static class Package
{
    public const string FashionMnist = "dataset-fashion-mnist";
    public const string NodeJs = "nodejs";
    /// <summary>The W&amp;B JavaScript SDK in tests/wandb-js/node_modules (npm ci, after nodejs and npm).</summary>
    public const string WandbJs = "wandb-js";
    public const string Chromium = "chromium";
    public const string PythonTorch = "python3-torch";
    public const string PythonScipy = "python3-scipy";
    /// <summary>A one-node Slurm on localhost (slurmctld, slurmd, slurm-client, munge), started by tests/slurm.</summary>
    public const string Slurm = "slurm";
    public const string Git = "git";
}

public static class Requirements
{
    public static readonly string[] All =
        [Package.FashionMnist, Package.NodeJs, Package.WandbJs, Package.Chromium, Package.PythonTorch, Package.PythonScipy, Package.Slurm, Package.Git];

    /// <summary>Under CI=true or VAEKIT_TEST_PACKAGES=required a missing package fails the tests that need it instead of skipping them.</summary>
    public static bool Enforced =>
        Environment.GetEnvironmentVariable("CI") == "true" || Environment.GetEnvironmentVariable("VAEKIT_TEST_PACKAGES") == "required";

    /// <summary>The python3 the tests run: Debian's, where it exists, so a pyenv or venv on PATH does not hide it.</summary>
    public static string Python => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    public static readonly string RepositoryRoot = FindRepositoryRoot();

    /// <summary>Runs tests/fixtures/<paramref name="script"/> with <see cref="Python"/> and <paramref name="args"/>,
    /// failing the test with its standard error when it exits non-zero (the fixtures script stand-in networks).</summary>
    public static void RunFixture(string script, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(RepositoryRoot, "tests", "fixtures", script) }.Concat(args))
            start.ArgumentList.Add(arg);
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"tests/fixtures/{script} failed ({process.ExitCode}): {output.Result}{error}");
    }

    /// <summary>Why <paramref name="package"/> is not usable here, with the line that installs it; null when it is.</summary>
    public static string? Missing(string package) => Cache.GetOrAdd(package, Check);

    /// <summary>The skip reason for a test that needs <paramref name="packages"/>; null when it can run (or under CI=true).</summary>
    public static string? SkipReason(params string[] packages)
    {
        if (Enforced) return null;
        var missing = packages.Select(Missing).OfType<string>().ToList();
        return missing.Count == 0 ? null : string.Join(" ", missing);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string?> Cache = new();

    private const string Everything = "tests/run installs every test package";

    private static string Apt(string what, string packages) =>
        $"{what} is missing; install it with: sudo apt-get install -y {packages} ({Everything}).";

    private static string? Check(string package) => package switch
    {
        Package.FashionMnist => File.Exists(Path.Join(DataSpec.DefaultFashionMnistDirectory, "train-images-idx3-ubyte.gz"))
                                && File.Exists(Path.Join(DataSpec.DefaultFashionMnistDirectory, "t10k-images-idx3-ubyte.gz"))
            ? null : Apt($"Fashion-MNIST ({DataSpec.DefaultFashionMnistDirectory})", Package.FashionMnist),
        Package.NodeJs => OnPath("node") ? null : Apt("Node.js (node)", "nodejs npm"),
        Package.WandbJs => Missing(Package.NodeJs) ?? (Directory.Exists(Path.Combine(WandbJsDirectory, "node_modules", "@wandb", "sdk"))
            ? null : $"the W&B JavaScript SDK (tests/wandb-js/node_modules) is missing; install it with: (cd tests/wandb-js && npm ci) ({Everything})."),
        Package.Chromium => OnPath("chromium") ? null : Apt("Chromium (chromium)", Package.Chromium),
        Package.PythonTorch => PythonHas("torch") ? null : Apt($"PyTorch for Python (import torch in {Python})", Package.PythonTorch),
        Package.PythonScipy => PythonHas("scipy") ? null : Apt($"SciPy for Python (import scipy in {Python})", Package.PythonScipy),
        Package.Slurm => !OnPath("sinfo")
            ? Apt("Slurm (sinfo)", "slurmctld slurmd slurm-client munge") + " Then start a one-node cluster: sudo bash tests/slurm/start-local-slurm.sh"
            : SlurmAnswers(out string why) ? null
            : $"no Slurm answers ({why}); start a one-node cluster with: sudo bash tests/slurm/start-local-slurm.sh ({Everything} and starts it).",
        Package.Git => OnPath("git") ? null : Apt("git", Package.Git),
        _ => throw new ArgumentException($"unknown test package '{package}'; known: {string.Join(", ", All)}", nameof(package)),
    };

    public static string WandbJsDirectory => Path.Combine(RepositoryRoot, "tests", "wandb-js");

    public static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(p => File.Exists(Path.Combine(p, tool)));

    /// <summary>Whether Slurm's controller answers with at least one usable node.</summary>
    public static bool SlurmAnswers(out string why)
    {
        var (exit, output) = Execute("sinfo", "--noheader", "--format=%T");
        why = exit == 0 ? "no node is up" : $"sinfo: {output.Trim()}";
        return exit == 0 && output.Split('\n').Any(s => s.Trim() is "idle" or "mixed" or "allocated");
    }

    private static bool PythonHas(string module)
    {
        // find_spec locates the module without importing it (importing torch takes seconds).
        var (exit, output) = Execute(Python, "-c", $"import importlib.util; print(importlib.util.find_spec('{module}') is not None)");
        return exit == 0 && output.Trim() == "True";
    }

    /// <summary>Runs a program to its end; (127, message) when it cannot start.</summary>
    public static (int Exit, string Output) Execute(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            // A hang guard only: these programs answer in milliseconds, but a loaded CI machine must not fail them.
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                return (124, $"{program} did not answer in 2 minutes");
            }
            return (process.ExitCode, output.Result + error.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (127, $"{program} cannot start: {e.Message}");
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VaeKit.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("repository root (VaeKit.slnx) not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A fact that needs system packages (<see cref="Package"/>): skipped, naming them, where one is missing.</summary>
public sealed class FactRequiringAttribute : FactAttribute
{
    public FactRequiringAttribute(params string[] packages)
    {
        if (Requirements.SkipReason(packages) is { } reason) Skip = reason;
    }
}

/// <summary>A theory that needs system packages (<see cref="Package"/>): skipped, naming them, where one is missing.</summary>
public sealed class TheoryRequiringAttribute : TheoryAttribute
{
    public TheoryRequiringAttribute(params string[] packages)
    {
        if (Requirements.SkipReason(packages) is { } reason) Skip = reason;
    }
}

public class RequirementsTests
{
    /// <summary>
    /// CI cannot pass by skipping: under CI=true (or from tests/run) this runs and names every missing package with the line that installs
    /// it. Elsewhere it is skipped, like any test, when a package is missing, and its reason lists them all.
    /// </summary>
    [FactRequiring(Package.FashionMnist, Package.NodeJs, Package.WandbJs, Package.Chromium, Package.PythonTorch,
                   Package.PythonScipy, Package.Slurm, Package.Git)]
    public void Every_test_package_is_installed()
    {
        var missing = Requirements.All.Select(p => (Package: p, Why: Requirements.Missing(p))).Where(m => m.Why is not null).ToList();
        Assert.True(missing.Count == 0, "tests would be skipped (or, under CI=true, fail) for want of:\n" +
                                        string.Join("\n", missing.Select(m => $"  {m.Package}: {m.Why}")));
    }

    [Fact]
    public void An_unknown_package_name_is_a_mistake_in_the_test_not_a_skip() =>
        Assert.Throws<ArgumentException>(() => Requirements.Missing("no-such-package"));
}
