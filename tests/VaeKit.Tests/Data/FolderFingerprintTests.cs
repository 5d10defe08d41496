using SkiaSharp;
using VaeKit.Data;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Data;

/// <summary>A folder's fingerprint follows its content, not its file times (<see cref="FolderContentIndex"/>).</summary>
public sealed class FolderFingerprintTests : IDisposable
{
    private readonly DataTempDir _dir = new();
    private readonly string _root;
    private readonly string _cache;

    public FolderFingerprintTests()
    {
        _root = Path.Join(_dir.Path, "photos");
        _cache = Path.Join(_dir.Path, "cache");
        TestImages.WriteFolder(_root, Enumerable.Range(0, 12).ToDictionary(i => $"{i:D2}.png",
            i => TestImages.Encode(10, 10, (x, y) => new SKColor((byte)(20 * i), (byte)(x * 25), (byte)(y * 25)))));
    }

    public void Dispose() => _dir.Dispose();

    private DatasetDescription Load(string? cache)
    {
        using var data = DatasetLoader.Load(new DataOptions { Source = new DataSpec.Folder(_root), ImageSize = 8, CacheDirectory = cache ?? "" });
        return data.Description;
    }

    private void Touch(string name, int days = 3) => File.SetLastWriteTimeUtc(Path.Join(_root, name), DateTime.UtcNow.AddDays(days));

    [Theory]
    [InlineData(true)]    // the index in the cache directory vouches for the other files; the touched one is re-hashed
    [InlineData(false)]   // no cache directory: every file is hashed
    public void Touching_a_file_keeps_the_fingerprint_and_changing_one_byte_does_not(bool cached)
    {
        string? cache = cached ? _cache : null;
        var before = Load(cache);
        Touch("03.png");
        var touched = Load(cache);
        Assert.Equal(before.Fingerprint, touched.Fingerprint);
        Assert.Equal(cached, touched.FromCache);   // the decode cache is keyed by content too

        string path = Path.Join(_root, "07.png");
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;                         // inside the PNG trailer's CRC: same size, other content
        File.WriteAllBytes(path, bytes);
        var changed = Load(cache);
        Assert.NotEqual(before.Fingerprint, changed.Fingerprint);
    }

    [Fact]
    public void A_file_with_its_size_and_time_unchanged_is_not_read_again()
    {
        Load(_cache);
        string path = Path.Join(_root, "05.png");
        var time = File.GetLastWriteTimeUtc(path);
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        File.SetLastWriteTimeUtc(path, time);      // what the index cannot see (as make and rsync cannot)

        var files = Directory.GetFiles(_root).Order(StringComparer.Ordinal)
            .Select(f => new FolderContentIndex.FileStamp(Path.GetFileName(f), new FileInfo(f).Length, File.GetLastWriteTimeUtc(f).Ticks)).ToList();
        var remembered = FolderContentIndex.Fingerprint(_root, files, _cache, CancellationToken.None);
        var reread = FolderContentIndex.Fingerprint(_root, files, cacheRoot: null, CancellationToken.None);
        Assert.NotEqual(reread, remembered);       // so the index saved the read; without it the change shows

        File.WriteAllBytes(FolderContentIndex.PathFor(_cache, _root), "damaged"u8.ToArray());
        Assert.Equal(reread, FolderContentIndex.Fingerprint(_root, files, _cache, CancellationToken.None));   // a damaged index costs a re-hash only
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Resume_accepts_a_folder_whose_files_were_only_touched()
    {
        string runs = Path.Join(_dir.Path, "runs");
        string[] common = ["--image-size", "8", "--widths", "4,8", "--blocks", "1", "--latent", "2", "--batch-size", "4",
                           "--device", "cpu", "--threads", "1", "--cache-dir", _cache];
        var (exit, _, error) = CliRunner.Run(["train", "--data", _root, "--epochs", "1", "--runs-dir", runs, "--name", "touched", .. common]);
        Assert.True(exit == 0, error);

        foreach (var name in new[] { "00.png", "06.png", "11.png" }) Touch(name);
        (exit, _, error) = CliRunner.Run("train", "--resume", Path.Join(runs, "touched"), "--epochs", "2");
        Assert.True(exit == 0, error);
        Assert.DoesNotContain("changed", error);
    }
}
