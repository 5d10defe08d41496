namespace VaeKit;

/// <summary>
/// Input the user can fix: a missing path, an empty dataset, an image size the architecture cannot take, a
/// malformed option. The CLI prints <see cref="Exception.Message"/> alone (no stack trace) and exits with
/// <see cref="ExitCodes.BadInput"/>. Messages say what was wrong and what to do instead.
/// </summary>
public class BadInputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Training stopped because the loss became NaN or infinite; the last good checkpoint is kept.</summary>
public sealed class DivergedException(string message) : Exception(message);

/// <summary>Process exit codes of the <c>vae</c> command, documented in the README.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int BadInput = 2;
    public const int Interrupted = 130;
}
