using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

public sealed class CacheTests : IDisposable
{
    private readonly DataTempDir _dir = new();
    private readonly string _root;

    public CacheTests()
    {
        _root = Path.Join(_dir.Path, "photos");
        var files = new Dictionary<string, byte[]>();
        for (int i = 0; i < 12; i++)
            files[$"img{i:D2}.png"] = TestImages.Encode(20, 20, (x, y) => new SKColor((byte)(i * 20), (byte)(x * 12), (byte)(y * 12)));
        files["broken.jpg"] = [];
        TestImages.WriteFolder(_root, files);
    }

    public void Dispose() => _dir.Dispose();

    private DataOptions Options(string cache) => new() { Source = new DataSpec.Folder(_root), ImageSize = 8, ValidationFraction = 0.25, CacheDirectory = cache };

    /// <summary>Decoded-set files (and any stray temp file); the folder's content-hash index (folders/) is not one.</summary>
    private string[] CacheFiles(string cache) =>
        Directory.Exists(cache)
            ? Directory.GetFiles(cache, "*", SearchOption.AllDirectories).Where(f => !f.StartsWith(Path.Join(cache, "folders"), StringComparison.Ordinal)).ToArray()
            : [];

    [Fact]
    public void A_second_load_comes_from_the_cache_with_identical_bytes()
    {
        string cache = Path.Join(_dir.Path, "cache");
        using var first = DatasetLoader.Load(Options(cache));
        var file = Assert.Single(CacheFiles(cache));
        Assert.Matches(@"datasets/[0-9a-f]{32}\.vkds$", file);

        var log = new ProgressLog();
        using var second = DatasetLoader.Load(Options(cache), log);

        Assert.False(first.Description.FromCache);
        Assert.True(second.Description.FromCache);
        Assert.Equal(first.Description, second.Description with { FromCache = false, SkippedExamples = first.Description.SkippedExamples });
        Assert.Equal(first.Description.SkippedExamples, second.Description.SkippedExamples);
        Assert.Equal(TestImages.Bytes(first.Train), TestImages.Bytes(second.Train));
        Assert.Equal(TestImages.Bytes(first.Validation), TestImages.Bytes(second.Validation));
        Assert.DoesNotContain(log.Reports, r => r.Stage == "decode");
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void Another_size_or_channel_count_is_a_different_cache_entry()
    {
        string cache = Path.Join(_dir.Path, "cache");
        using (DatasetLoader.Load(Options(cache))) { }
        using (var other = DatasetLoader.Load(Options(cache) with { ImageSize = 4 })) Assert.False(other.Description.FromCache);
        using (var gray = DatasetLoader.Load(Options(cache) with { Channels = 1 })) Assert.False(gray.Description.FromCache);
        Assert.Equal(3, CacheFiles(cache).Length);
    }

    [Fact]
    public void Changing_the_data_set_invalidates_the_cache()
    {
        string cache = Path.Join(_dir.Path, "cache");
        using (DatasetLoader.Load(Options(cache))) { }
        File.WriteAllBytes(Path.Join(_root, "new.png"), TestImages.Solid(9, 9, SKColors.Red));
        using var again = DatasetLoader.Load(Options(cache));
        Assert.False(again.Description.FromCache);
        Assert.Equal(13, again.Description.Decoded);
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("flip-pixel")]
    [InlineData("garbage-header")]
    public void A_damaged_cache_file_is_ignored_and_rebuilt(string damage)
    {
        string cache = Path.Join(_dir.Path, "cache");
        byte[] expected;
        using (var first = DatasetLoader.Load(Options(cache))) expected = TestImages.Bytes(first.Train);
        string file = Assert.Single(CacheFiles(cache));
        var bytes = File.ReadAllBytes(file);
        switch (damage)
        {
            case "truncate": bytes = bytes[..(bytes.Length - 100)]; break;
            case "flip-pixel": bytes[^100] ^= 0xFF; break;
            default: Array.Fill(bytes, (byte)'x', 0, 40); break;
        }
        File.WriteAllBytes(file, bytes);

        var log = new ProgressLog();
        using (var rebuilt = DatasetLoader.Load(Options(cache), log))
        {
            Assert.False(rebuilt.Description.FromCache);
            Assert.Equal(expected, TestImages.Bytes(rebuilt.Train));
        }
        Assert.Contains(log.Warnings, w => w.Contains("ignoring cache file"));
        using var third = DatasetLoader.Load(Options(cache));
        Assert.True(third.Description.FromCache);   // the rebuilt file is good again
    }

    [Fact]
    public void An_unwritable_cache_directory_only_warns()
    {
        // A path below a regular file can never be created, even by root (a read-only chmod would not stop root).
        string blocker = Path.Join(_dir.Path, "blocker");
        File.WriteAllText(blocker, "");
        var log = new ProgressLog();
        using var data = DatasetLoader.Load(Options(Path.Join(blocker, "cache")), log);
        Assert.Equal(12, data.Description.Decoded);
        Assert.Contains(log.Warnings, w => w.Contains("not cached"));
    }

    [Fact]
    public void An_empty_cache_directory_setting_turns_caching_off()
    {
        using var first = DatasetLoader.Load(Options(""));
        using var second = DatasetLoader.Load(Options(""));
        Assert.False(second.Description.FromCache);
        Assert.Equal(TestImages.Bytes(first.Train), TestImages.Bytes(second.Train));
    }

    [Fact]
    public void The_default_cache_directory_follows_the_environment()
    {
        var options = new DataOptions { Source = new DataSpec.Synthetic(1) };
        string? saved = Environment.GetEnvironmentVariable("VAEKIT_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("VAEKIT_CACHE", "/somewhere/vk");
            Assert.Equal("/somewhere/vk", options.ResolveCacheDirectory());
            Environment.SetEnvironmentVariable("VAEKIT_CACHE", null);
            Assert.EndsWith("vaekit", options.ResolveCacheDirectory());
            Assert.Null((options with { CacheDirectory = "" }).ResolveCacheDirectory());
        }
        finally { Environment.SetEnvironmentVariable("VAEKIT_CACHE", saved); }
    }
}
