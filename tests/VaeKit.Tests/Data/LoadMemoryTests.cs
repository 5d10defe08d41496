using System.IO.Compression;
using System.Text.Json;
using SkiaSharp;
using VaeKit.Data;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Data;

/// <summary>
/// Loading costs the decoded pixels and little more: no whole-set float or managed copy, the cache written and read
/// in a stream, the split done in place. A small Kaggle-shaped archive (JPEG faces of 90–120 px under images/, a few
/// corrupt) is loaded by <c>vae data</c> in child processes at a tiny and a large size; the growth of the peak
/// resident set between the two is compared with the growth of the decoded bytes. A ratio within one run, so a loaded
/// machine does not change the verdict (the full-size numbers are in BENCHMARKS.md).
/// </summary>
[Trait("Category", "Slow")]
public sealed class LoadMemoryTests : IDisposable
{
    private const int Images = 400, Corrupt = 4;
    private readonly DataTempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A zip like the Kaggle anime-faces archive.zip, in small: images/N_YEAR.jpg, 90–120 px faces, some corrupt.</summary>
    internal static void WriteAnimeArchive(string path, int count, int corrupt)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        for (int i = 0; i < count; i++)
        {
            int side = 90 + i * 7 % 31;
            var rgb = new byte[side * side * 3];
            SyntheticFaces.Render(seed: 5, i, side, rgb);
            byte[] jpeg = TestImages.Encode(side, side, (x, y) => { int o = (y * side + x) * 3; return new SKColor(rgb[o], rgb[o + 1], rgb[o + 2]); },
                                            SKEncodedImageFormat.Jpeg, quality: 90);
            if (i % (count / Math.Max(1, corrupt)) == 1) jpeg = i % 2 == 0 ? [] : jpeg[..(jpeg.Length / 3)];
            using var entry = zip.CreateEntry($"images/{i}_{2000 + i % 20}.jpg", CompressionLevel.Fastest).Open();
            entry.Write(jpeg);
        }
    }

    private (long PeakRss, long Decoded, bool FromCache, int Count, int Skipped) LoadInChild(string archive, int size)
    {
        var (exit, output, error) = VaeProcess.Run(["data", "--data", archive, "--image-size", size.ToString(), "--cache-dir", Path.Join(_dir.Path, "cache"), "--json"]);
        Assert.True(exit == 0, $"vae data failed: {error}");
        var json = JsonDocument.Parse(output).RootElement;
        return (json.GetProperty("peak_rss_bytes").GetInt64(), json.GetProperty("decoded_bytes").GetInt64(),
                json.GetProperty("from_cache").GetBoolean(), json.GetProperty("decoded").GetInt32(), json.GetProperty("skipped").GetInt32());
    }

    [Fact]
    public void Peak_memory_grows_with_the_decoded_pixels_and_not_a_multiple_of_them()
    {
        string archive = _dir.File("archive.zip");
        WriteAnimeArchive(archive, Images, Corrupt);

        // First start (decode and write the cache), then second start (read the cache), at each size.
        var small = LoadInChild(archive, 16);
        var large = LoadInChild(archive, 256);
        var smallCached = LoadInChild(archive, 16);
        var largeCached = LoadInChild(archive, 256);

        Assert.Equal((Images - Corrupt, Corrupt), (large.Count, large.Skipped));
        Assert.Equal((false, true), (large.FromCache, largeCached.FromCache));
        long pixels = large.Decoded - small.Decoded;   // 396 · (256² − 16²) · 3 ≈ 78 MB
        Assert.True(pixels > 70_000_000);
        // 1.0 would be the pixels alone; a second whole copy (float, managed, cache buffer, split) would make it ≥ 2.
        double first = (double)(large.PeakRss - small.PeakRss) / pixels;
        double second = (double)(largeCached.PeakRss - smallCached.PeakRss) / pixels;
        Assert.True(first < 1.6, $"first start: peak RSS grew {first:F2}× the decoded bytes ({small.PeakRss >> 20} → {large.PeakRss >> 20} MB for {pixels >> 20} MB of pixels)");
        Assert.True(second < 1.6, $"cached start: peak RSS grew {second:F2}× the decoded bytes ({smallCached.PeakRss >> 20} → {largeCached.PeakRss >> 20} MB for {pixels >> 20} MB of pixels)");
    }
}
