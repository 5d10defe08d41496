namespace VaeKit.Training;

/// <summary>
/// A checkpoint could not be written (the disk is full, a quota is exhausted, or another I/O error). The message
/// says in plain words what happened, which checkpoints on disk are intact (with their step), that the partly written
/// temporary file was removed, and how to continue. The CLI prints it alone and exits with
/// exit code 1: the input was fine, the machine failed.
/// </summary>
public sealed class CheckpointWriteException(string path, SettingText message, Exception inner) : IOException(message.ToString(), inner)
{
    /// <summary>The message with its settings typed (the CLI names them by its flags).</summary>
    public SettingText Text { get; } = message;

    /// <summary>The checkpoint that was being written.</summary>
    public string Path { get; } = path;

    /// <summary>The cause in user terms ("the disk is full", or the system's message).</summary>
    public string Cause => Describe(InnerException is CheckpointWriteException c ? c.InnerException! : InnerException!);

    /// <summary>errno values (Linux) and Windows HRESULTs for "no space".</summary>
    private const int Enospc = 28, Edquot = 122, WinDiskFull = unchecked((int)0x80070070), WinHandleDiskFull = unchecked((int)0x80070027);

    /// <summary>True when <paramref name="e"/> says the device or the user's quota is out of space.</summary>
    public static bool IsOutOfSpace(Exception e) => e.HResult is Enospc or Edquot or WinDiskFull or WinHandleDiskFull;

    internal static string Describe(Exception e) => e.HResult switch
    {
        Enospc or WinDiskFull or WinHandleDiskFull => "the disk is full (no space left on the device)",
        Edquot => "the disk quota is exhausted",
        _ => FirstLine(e.Message),
    };

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
