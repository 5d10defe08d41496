namespace VaeKit;

/// <summary>
/// Input the user can fix: a missing path, an empty dataset, an image size the architecture cannot take, a
/// malformed setting. Messages say what was wrong and what to do instead, and name settings by their place in
/// config.json (<c>train.learning_rate</c>); the CLI prints the message alone (no stack trace), with settings turned
/// into its flags, and exits with code 2.
/// </summary>
public class BadInputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Training stopped because the loss became NaN or infinite; the last good checkpoint is kept.</summary>
public sealed class DivergedException(string message) : Exception(message);
