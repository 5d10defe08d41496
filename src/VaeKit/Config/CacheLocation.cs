using System.Text.Json;
using System.Text.Json.Serialization;

namespace VaeKit.Config;

/// <summary>
/// Where decoded image sets are cached: <see cref="Off"/>, or <see cref="At"/> a directory; a null
/// <see cref="CacheLocation"/> means the default user cache (<c>$VAEKIT_CACHE</c>, else <c>$XDG_CACHE_HOME/vaekit</c>,
/// else <c>~/.cache/vaekit</c>). config.json spells it as before: absent for the default, <c>""</c> for off, the path
/// otherwise (the converter below and the implicit conversion from text are the only places that spelling is read).
/// </summary>
[JsonConverter(typeof(CacheLocationJson))]
public sealed record CacheLocation
{
    private CacheLocation(string? directory) => Directory = directory;

    /// <summary>The cache directory; null when caching is off.</summary>
    public string? Directory { get; }

    /// <summary>No caching: decode every time, write nothing.</summary>
    public static CacheLocation Off { get; } = new((string?)null);

    /// <summary>Cache under <paramref name="directory"/>.</summary>
    public static CacheLocation At(string directory) =>
        string.IsNullOrEmpty(directory) ? throw new ArgumentException("A cache directory needs a path; use CacheLocation.Off for none.", nameof(directory)) : new(directory);

    /// <summary>This location with a relative directory made absolute (for processes started elsewhere).</summary>
    public CacheLocation Absolute() => Directory is null ? this : At(Path.GetFullPath(Directory));

    /// <summary>config.json's and the CLI's spelling: null = the default (null result), "" = off, else a directory.</summary>
    public static implicit operator CacheLocation?(string? text) => text is null ? null : text.Length == 0 ? Off : At(text);

    /// <inheritdoc/>
    public override string ToString() => Directory ?? "off";

    private sealed class CacheLocationJson : JsonConverter<CacheLocation>
    {
        public override CacheLocation? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetString();

        public override void Write(Utf8JsonWriter writer, CacheLocation value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.Directory ?? "");
    }
}
