using System.Collections.Concurrent;
using System.IO.Compression;
using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on Dispose. (Named apart from
/// main's VaeKit.Tests.TempDir so the two never shadow each other after the merge.)</summary>
public sealed class DataTempDir : IDisposable
{
    public DataTempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Join(System.IO.Path.GetTempPath(), "vaekit-test-" + Guid.NewGuid().ToString("N"));

    public string File(string relative)
    {
        string full = System.IO.Path.Join(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        return full;
    }

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

/// <summary>Collects progress reports synchronously (Progress&lt;T&gt; would post them to the thread pool).</summary>
public sealed class ProgressLog : IProgress<DecodeProgress>
{
    public ConcurrentQueue<DecodeProgress> Reports { get; } = new();
    public void Report(DecodeProgress value) => Reports.Enqueue(value);
    public IEnumerable<string> Warnings => Reports.Where(r => r.IsWarning).Select(r => r.Stage);
}

/// <summary>Builds encoded test images with Skia.</summary>
public static class TestImages
{
    /// <summary>Encodes a width×height image whose pixel (x, y) is <paramref name="color"/>(x, y).</summary>
    public static byte[] Encode(int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format = SKEncodedImageFormat.Png, int quality = 95)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }

    public static byte[] Solid(int width, int height, SKColor color, SKEncodedImageFormat format = SKEncodedImageFormat.Png) =>
        Encode(width, height, (_, _) => color, format);

    /// <summary>
    /// Files for a folder or zip: five good images (PNG, JPEG, WebP; nested; mixed-case extensions), three bad ones
    /// (0-byte .jpg, truncated .jpg, text named .png) and a .txt file that is not an image at all.
    /// </summary>
    public static Dictionary<string, byte[]> MessyDataSet()
    {
        var jpeg = Encode(40, 30, (x, y) => new SKColor((byte)(x * 6), (byte)(y * 8), 90), SKEncodedImageFormat.Jpeg);
        return new Dictionary<string, byte[]>
        {
            ["a.png"] = Solid(20, 20, SKColors.Red),
            ["sub/b.jpg"] = jpeg,
            ["sub/deeper/c.PNG"] = Solid(24, 16, SKColors.Lime),
            ["sub/d.jpeg"] = Encode(16, 16, (x, y) => new SKColor(200, (byte)(x * 16), (byte)(y * 16)), SKEncodedImageFormat.Jpeg),
            ["e.webp"] = Solid(16, 16, SKColors.Blue, SKEncodedImageFormat.Webp),
            ["bad/empty.jpg"] = [],
            ["bad/truncated.jpg"] = jpeg[..(jpeg.Length / 2)],
            ["bad/notes.png"] = "this is not a picture"u8.ToArray(),
            ["readme.txt"] = "ignored: not an image extension"u8.ToArray(),
        };
    }

    public static void WriteFolder(string root, IReadOnlyDictionary<string, byte[]> files)
    {
        foreach (var (name, bytes) in files)
        {
            string path = Path.Join(root, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
    }

    public static void WriteZip(string zipPath, IReadOnlyDictionary<string, byte[]> files, string prefix = "images/")
    {
        using var archive = ZipFile.Open(zipPath, ZipArchiveMode.Create);
        foreach (var (name, bytes) in files)
        {
            using var entry = archive.CreateEntry(prefix + name).Open();
            entry.Write(bytes);
        }
    }

    /// <summary>Every file under a directory (hidden ones too) with its length and write time.</summary>
    public static string[] Listing(string root) =>
        new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(f => $"{Path.GetRelativePath(root, f.FullName)} {(f is FileInfo fi ? fi.Length : -1)} {f.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal).ToArray();

    /// <summary>All bytes of a decoded set, image by image.</summary>
    public static byte[] Bytes(DecodedImages images)
    {
        var all = new byte[images.ByteLength];
        int length = images.Size * images.Size * images.Channels;
        for (int i = 0; i < images.Count; i++) images.ImageSpan(i).CopyTo(all.AsSpan(i * length, length));
        return all;
    }
}
