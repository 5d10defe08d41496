using System.Runtime.InteropServices;

namespace VaeKit.Cli;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM as a cancellation token for the long commands (train, sweep): the first one asks the
/// run to finish its step and save; a second Ctrl-C ends the process (checkpoints are written atomically).
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly PosixSignalRegistration _term;

    public StopSignals()
    {
        Console.CancelKeyPress += OnCtrlC;
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; _cancel.Cancel(); });
    }

    public CancellationToken Token => _cancel.Token;

    private void OnCtrlC(object? sender, ConsoleCancelEventArgs e)
    {
        if (_cancel.IsCancellationRequested) return;
        e.Cancel = true;
        _cancel.Cancel();
        Console.Error.WriteLine("Ctrl-C: finishing the current step and saving (press again to abort)…");
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCtrlC;
        _term.Dispose();
        _cancel.Dispose();
    }
}
