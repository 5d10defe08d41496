namespace VaeKit.Cli;

/// <summary>Process exit codes of the <c>vae</c> command, documented in the README.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>A failure, including a diverged run.</summary>
    public const int Failure = 1;
    /// <summary>Input the user can fix (<see cref="BadInputException"/>).</summary>
    public const int BadInput = 2;
    /// <summary>Ctrl-C or SIGTERM: the run saved its checkpoint and stopped.</summary>
    public const int Interrupted = 130;
}
