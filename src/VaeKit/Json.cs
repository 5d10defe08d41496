using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace VaeKit;

/// <summary>One JSON dialect for every file VaeKit writes: snake_case keys and enum values, as PyTorch users expect.</summary>
public static class Json
{
    /// <summary>Indented snake_case options, for files people read.</summary>
    public static JsonSerializerOptions Indented { get; } = Create(indented: true);
    /// <summary>Single-line snake_case options, for JSON Lines files.</summary>
    public static JsonSerializerOptions Compact { get; } = Create(indented: false);

    private static JsonSerializerOptions Create(bool indented) => new()
    {
        WriteIndented = indented,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,   // NaN/Infinity metrics stay numbers-in-spirit
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Writes text atomically: a temporary file in the same directory, flushed to disk, then renamed over the target.</summary>
    public static void WriteAllTextAtomic(string path, string text)
    {
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.Write(text);
        });
    }
}

/// <summary>Crash-safe file replacement: readers see the old file or the new one, never a torn one.</summary>
public static class AtomicFile
{
    /// <summary>
    /// Key of <see cref="Exception.Data"/> on an exception thrown by <see cref="Write(string, Action{Stream})"/>: present,
    /// with the temporary file's path, only when that file could not be removed.
    /// </summary>
    public const string LeftOverKey = "VaeKit.AtomicFile.LeftOver";

    /// <summary>Replaces <paramref name="path"/> with what <paramref name="write"/> writes to a temporary file in the same directory (flushed, then renamed over the target).</summary>
    public static void Write(string path, Action<Stream> write) => Write(path, write, wrap: null);

    /// <param name="wrap">Test seam: wraps the file stream before <paramref name="write"/> sees it (e.g. to fail like a full disk).</param>
    internal static void Write(string path, Action<Stream> write, Func<Stream, Stream>? wrap)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var stream = wrap?.Invoke(file) ?? file;
                write(stream);
                stream.Flush();
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);   // rename(2): atomic on POSIX file systems
        }
        catch (Exception e)
        {
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            if (File.Exists(temp)) e.Data[LeftOverKey] = temp;
            throw;
        }
    }
}
