namespace VaeKit;

/// <summary>
/// Input the user can fix: a missing path, an empty dataset, an image size the architecture cannot take, a
/// malformed setting. Messages say what was wrong and what to do instead, and name settings by typed keys
/// (<see cref="SettingText"/>): <see cref="Exception.Message"/> spells them as config.json does
/// (<c>train.learning_rate</c>); the CLI renders <see cref="Text"/> with its flags, prints it alone (no stack trace)
/// and exits with code 2.
/// </summary>
public class BadInputException : Exception
{
    /// <summary>A message that names no setting.</summary>
    public BadInputException(string message, Exception? inner = null) : this(SettingText.Plain(message), inner) { }

    /// <summary>A message naming settings by key, usually written as an interpolated string with
    /// <see cref="SettingKey"/> holes.</summary>
    public BadInputException(SettingText text, Exception? inner = null) : base(text.ToString(), inner) => Text = text;

    /// <summary>The message with its settings kept typed, for a front end to render in its own words.</summary>
    public SettingText Text { get; }
}

/// <summary>Training stopped because the loss became NaN or infinite; the last good checkpoint is kept.</summary>
public sealed class DivergedException(SettingText text) : Exception(text.ToString())
{
    /// <summary>The message with its settings typed.</summary>
    public SettingText Text { get; } = text;
}
