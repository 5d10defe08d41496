using System.Diagnostics;
using System.Runtime.InteropServices;
using VaeKit.Cli;

namespace VaeKit.Tests.Cli;

/// <summary>
/// The built <c>vae</c> as a separate process, for what an in-process run cannot show: real signals, and process-wide
/// state such as which libtorch is loaded.
/// </summary>
internal sealed class VaeProcess : IDisposable
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private const int SigInt = 2;

    private readonly Process _process;
    private readonly Task<string> _output;
    private readonly Task<string> _error;

    private VaeProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment, bool terminal = false)
    {
        var start = new ProcessStartInfo(terminal ? "script" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        string dll = Path.ChangeExtension(typeof(VaeCli).Assembly.Location, ".dll");
        if (terminal)
        {
            // util-linux script(1) gives the command a pseudo-terminal, as a user's shell would.
            foreach (var arg in new[] { "-q", "-f", "-e", "-c", string.Join(' ', new[] { "dotnet", dll }.Concat(args).Select(Quote)), "/dev/null" })
                start.ArgumentList.Add(arg);
            start.Environment["TERM"] = "xterm-256color";
            start.Environment["COLUMNS"] = "100";
            start.Environment["LINES"] = "30";
        }
        else
        {
            start.ArgumentList.Add(dll);
            foreach (var arg in args) start.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        _process = Process.Start(start)!;
        _output = _process.StandardOutput.ReadToEndAsync();
        _error = _process.StandardError.ReadToEndAsync();
    }

    private static string Quote(string arg) => "'" + arg.Replace("'", "'\\''") + "'";

    /// <summary>Runs to the end on a pseudo-terminal (stdout is a TTY, as in a user's shell): exit code and what the terminal received.</summary>
    public static (int Exit, string Screen) RunInTerminal(IEnumerable<string> args)
    {
        using var vae = new VaeProcess(args, null, terminal: true);
        vae._process.WaitForExit();
        return (vae._process.ExitCode, vae._output.Result + vae._error.Result);
    }

    /// <param name="environment">Variables to set (a null value removes one).</param>
    public static VaeProcess Start(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null) => new(args, environment);

    /// <summary>Runs to the end: exit code, stdout, stderr.</summary>
    public static (int Exit, string Out, string Err) Run(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        using var vae = Start(args, environment);
        vae._process.WaitForExit();
        return (vae._process.ExitCode, vae._output.Result, vae._error.Result);
    }

    /// <summary>Waits until training is under way: <paramref name="rows"/> lines in the run's metrics.jsonl.</summary>
    public async Task WaitForMetricRows(string metricsPath, int rows)
    {
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(metricsPath) && File.ReadLines(metricsPath).Count() >= rows))
        {
            if (_process.HasExited) Assert.Fail($"vae exited early: {await _output}{await _error}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), "training did not start within 5 minutes (a hang guard)");
            await Task.Delay(100);
        }
    }

    /// <summary>Sends SIGINT (Ctrl-C) and waits for the exit (a 5-minute hang guard: the run saves first, and CI
    /// shares two loaded cores): exit code, stdout, stderr.</summary>
    public async Task<(int Exit, string Out, string Err)> Interrupt()
    {
        Assert.Equal(0, kill(_process.Id, SigInt));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await _process.WaitForExitAsync(timeout.Token);
        return (_process.ExitCode, await _output, await _error);
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
