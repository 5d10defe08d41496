using System.ComponentModel;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace VaeKit;

/// <summary>
/// A setting by its place in config.json (<c>train.learning_rate</c>, <c>model.options.code_dim</c>) or in a library
/// call's options (<c>eval.samples</c>). Library messages hold keys, never a front end's spelling of them: the CLI turns
/// each key into its flag through one table built from its option definitions (<c>VaeKit.Cli.SettingFlags</c>).
/// </summary>
public readonly record struct SettingKey(string Path)
{
    /// <summary>This setting with a value, as a user would give it (<c>model.latent=24</c>, <c>--latent 24</c>).</summary>
    public SettingValue Is(object value) => new(this, Convert.ToString(value, CultureInfo.InvariantCulture) ?? "");

    /// <summary>A family's own option: <c>model.options.NAME</c>.</summary>
    public static SettingKey ModelOption(string name) => new(Settings.ModelOptionPrefix + name);

    /// <summary>The option name when this key is a family option (<c>model.options.code_dim</c> → <c>code_dim</c>).</summary>
    public string? ModelOptionName => Path.StartsWith(Settings.ModelOptionPrefix, StringComparison.Ordinal) ? Path[Settings.ModelOptionPrefix.Length..] : null;

    /// <summary>The config.json path.</summary>
    public override string ToString() => Path;
}

/// <summary>A setting with the value a message suggests or quotes.</summary>
public readonly record struct SettingValue(SettingKey Key, string Value)
{
    /// <summary><c>path=value</c>.</summary>
    public override string ToString() => $"{Key.Path}={Value}";
}

/// <summary>A step a message advises: one of VaeKit's operations (train, prior, sweep, …) with the settings it
/// needs. The CLI writes it as the command to type (<c>vae prior --run R --kind gmm</c>).</summary>
public sealed record Operation(string Name, params SettingValue[] Settings)
{
    /// <summary>The operation and its settings in config.json names.</summary>
    public override string ToString() =>
        Settings.Length == 0 ? $"the {Name} operation" : $"the {Name} operation with {string.Join(", ", Settings)}";
}

/// <summary>How a front end spells settings and operations; <see cref="SettingText.Render"/> asks it.</summary>
public interface ISettingNames
{
    /// <summary>How a setting is named (<c>--lr</c>).</summary>
    string Name(SettingKey key);
    /// <summary>How a setting with a value is given (<c>--lr 0.001</c>).</summary>
    string Name(SettingValue setting);
    /// <summary>How an operation is invoked (<c>vae prior --run R --kind gmm</c>).</summary>
    string Name(Operation operation);
}

/// <summary>
/// A sentence that names settings: text and <see cref="SettingKey"/>/<see cref="SettingValue"/>/<see cref="Operation"/>
/// parts, kept apart so each front end renders them in its own vocabulary. Write it as an interpolated string; holes of
/// those types stay typed, every other hole is formatted as string interpolation would:
/// <code>throw new BadInputException($"{Settings.Train.Epochs} must be positive (got {epochs}).");</code>
/// <see cref="ToString"/> renders the config.json names.
/// </summary>
[InterpolatedStringHandler]
public sealed class SettingText
{
    private readonly List<object> _parts;

    /// <summary>Used by the compiler for an interpolated string.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public SettingText(int literalLength, int formattedCount) => _parts = new List<object>(2 * formattedCount + 1);

    private SettingText(List<object> parts) => _parts = parts;

    /// <summary>Text that names no setting.</summary>
    public static SettingText Plain(string text) => new([text]);

    /// <summary>Compiler-called: literal text.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendLiteral(string text) => _parts.Add(text);
    /// <summary>Compiler-called: a setting, kept typed.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted(SettingKey key) => _parts.Add(key);
    /// <summary>Compiler-called: a setting with a value, kept typed.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted(SettingValue setting) => _parts.Add(setting);
    /// <summary>Compiler-called: an operation, kept typed.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted(Operation operation) => _parts.Add(operation);
    /// <summary>Compiler-called: another setting text, spliced in with its parts typed.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted(SettingText text) => _parts.AddRange(text._parts);

    /// <summary>Compiler-called: any other value, formatted as string interpolation would.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted<T>(T value, string? format = null)
    {
        var text = new DefaultInterpolatedStringHandler(0, 1);
        text.AppendFormatted(value, format);
        _parts.Add(text.ToStringAndClear());
    }

    /// <summary>Compiler-called: any other value with an alignment.</summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public void AppendFormatted<T>(T value, int alignment, string? format = null)
    {
        var text = new DefaultInterpolatedStringHandler(0, 1);
        text.AppendFormatted(value, alignment, format);
        _parts.Add(text.ToStringAndClear());
    }

    /// <summary>The settings this text names, in order (an operation's included).</summary>
    public IEnumerable<SettingKey> Keys => _parts.SelectMany(p => p switch
    {
        SettingKey k => [k],
        SettingValue v => [v.Key],
        Operation o => o.Settings.Select(s => s.Key),
        _ => Enumerable.Empty<SettingKey>(),
    });

    /// <summary>A new text: this one with <paramref name="more"/> after it (this one is not changed).</summary>
    public SettingText Then(SettingText more) => new([.. _parts, .. more._parts]);

    /// <summary>The text with every setting and operation named by <paramref name="names"/>.</summary>
    public string Render(ISettingNames names)
    {
        var text = new StringBuilder();
        foreach (var part in _parts)
            text.Append(part switch
            {
                SettingKey k => names.Name(k),
                SettingValue v => names.Name(v),
                Operation o => names.Name(o),
                _ => (string)part,
            });
        return text.ToString();
    }

    /// <summary>The text in the library's own names (config.json keys).</summary>
    public override string ToString() => Render(ConfigNames.Instance);

    /// <summary>The library's own spelling: config.json keys.</summary>
    private sealed class ConfigNames : ISettingNames
    {
        public static readonly ConfigNames Instance = new();
        public string Name(SettingKey key) => key.Path;
        public string Name(SettingValue setting) => setting.ToString();
        public string Name(Operation operation) => operation.ToString();
    }
}
