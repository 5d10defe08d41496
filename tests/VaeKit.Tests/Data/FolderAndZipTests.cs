using System.IO.Compression;
using System.Text.Json;
using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

public sealed class FolderAndZipTests : IDisposable
{
    private readonly DataTempDir _dir = new();
    private string Cache => Path.Join(_dir.Path, "cache");

    public void Dispose() => _dir.Dispose();

    private DataOptions Options(DataSpec source, int size = 16, double fraction = 0.2) =>
        new() { Source = source, ImageSize = size, ValidationFraction = fraction, CacheDirectory = Cache };

    [Fact]
    public void A_messy_folder_decodes_the_good_images_and_names_the_bad_ones()
    {
        string root = Path.Join(_dir.Path, "photos");
        TestImages.WriteFolder(root, TestImages.MessyDataSet());

        using var data = DatasetLoader.Load(Options(new DataSpec.Folder(root)));
        var d = data.Description;

        Assert.Equal("folder", d.Kind);
        Assert.Equal($"folder {root}", d.Source);
        Assert.Equal(5, d.Decoded);
        Assert.Equal(3, d.Skipped);
        Assert.Equal(["bad/empty.jpg: empty file", "bad/notes.png: not an image (unrecognised format)", "bad/truncated.jpg: truncated"], d.SkippedExamples);
        Assert.Equal(1, d.ValidationCount);                        // round(5 · 0.2)
        Assert.Equal(4, d.TrainCount);
        Assert.Equal((16, 16, 3), (data.Train.Size, data.Train.Size, data.Train.Channels));
        Assert.Equal(16, d.Fingerprint.Length);
        Assert.False(d.FromCache);

        // The description survives a JSON round trip (it is stored with training runs).
        var back = JsonSerializer.Deserialize<DatasetDescription>(JsonSerializer.Serialize(d))!;
        Assert.Equal(d with { SkippedExamples = back.SkippedExamples }, back);
        Assert.Equal(d.SkippedExamples, back.SkippedExamples);
    }

    [Fact]
    public void A_zip_gives_exactly_what_the_same_files_in_a_folder_give()
    {
        var files = TestImages.MessyDataSet();
        string root = Path.Join(_dir.Path, "photos");
        string zip = Path.Join(_dir.Path, "archive.zip");
        TestImages.WriteFolder(root, files);
        TestImages.WriteZip(zip, files);   // entries under images/, like Kaggle's Anime Face archive.zip

        using var fromFolder = DatasetLoader.Load(Options(new DataSpec.Folder(root)));
        using var fromZip = DatasetLoader.Load(Options(new DataSpec.Zip(zip)));

        Assert.Equal("zip", fromZip.Description.Kind);
        Assert.Equal((5, 3), (fromZip.Description.Decoded, fromZip.Description.Skipped));
        Assert.Contains("images/bad/truncated.jpg: truncated", fromZip.Description.SkippedExamples);
        Assert.Equal(TestImages.Bytes(fromFolder.Train), TestImages.Bytes(fromZip.Train));
        Assert.Equal(TestImages.Bytes(fromFolder.Validation), TestImages.Bytes(fromZip.Validation));
    }

    [Fact]
    public void Loading_writes_nothing_into_the_data_set()
    {
        var files = TestImages.MessyDataSet();
        string root = Path.Join(_dir.Path, "photos");
        string zipDir = Path.Join(_dir.Path, "zipped");
        TestImages.WriteFolder(root, files);
        Directory.CreateDirectory(zipDir);
        TestImages.WriteZip(Path.Join(zipDir, "a.zip"), files);
        var folderBefore = TestImages.Listing(root);
        var zipBefore = TestImages.Listing(zipDir);

        for (int pass = 0; pass < 2; pass++)   // decode, then from cache
        {
            using (DatasetLoader.Load(Options(new DataSpec.Folder(root)))) { }
            using (DatasetLoader.Load(Options(new DataSpec.Zip(Path.Join(zipDir, "a.zip"))))) { }
        }

        Assert.Equal(folderBefore, TestImages.Listing(root));   // directory times too: nothing created and deleted
        Assert.Equal(zipBefore, TestImages.Listing(zipDir));
    }

    [Fact]
    public void Progress_reports_decoding_up_to_the_total()
    {
        string root = Path.Join(_dir.Path, "photos");
        TestImages.WriteFolder(root, TestImages.MessyDataSet());
        var log = new ProgressLog();
        using var _ = DatasetLoader.Load(Options(new DataSpec.Folder(root)), log);
        Assert.Contains(new DecodeProgress("decode", 8, 8), log.Reports);
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void An_empty_folder_is_bad_input_naming_it()
    {
        string root = Path.Join(_dir.Path, "empty");
        Directory.CreateDirectory(Path.Join(root, "sub"));
        File.WriteAllText(Path.Join(root, "sub", "notes.txt"), "no images here");
        var e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Folder(root))));
        Assert.Contains(root, e.Message);
        Assert.Contains("no image files", e.Message);
    }

    [Fact]
    public void A_missing_folder_or_zip_is_bad_input_naming_it()
    {
        string missing = Path.Join(_dir.Path, "gone");
        Assert.Contains(missing, Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Folder(missing)))).Message);
        Assert.Contains(missing + ".zip", Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Zip(missing + ".zip")))).Message);
    }

    [Fact]
    public void A_zip_without_images_is_bad_input_naming_it()
    {
        string zip = Path.Join(_dir.Path, "docs.zip");
        TestImages.WriteZip(zip, new Dictionary<string, byte[]> { ["readme.txt"] = "hello"u8.ToArray() });
        var e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Zip(zip))));
        Assert.Contains(zip, e.Message);
        Assert.Contains("no image files", e.Message);
    }

    [Fact]
    public void A_folder_whose_images_all_fail_is_bad_input_with_an_example()
    {
        string root = Path.Join(_dir.Path, "broken");
        TestImages.WriteFolder(root, new Dictionary<string, byte[]> { ["x.jpg"] = [], ["y.png"] = "text"u8.ToArray() });
        var e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Folder(root))));
        Assert.Contains(root, e.Message);
        Assert.Contains("x.jpg: empty file", e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_zip_is_bad_input_naming_it()
    {
        string zip = Path.Join(_dir.Path, "fake.zip");
        File.WriteAllText(zip, "definitely not a zip archive");
        var e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(Options(new DataSpec.Zip(zip))));
        Assert.Contains(zip, e.Message);
        Assert.Contains("zip archive", e.Message);
    }

    [Fact]
    public void Mac_resource_forks_and_hidden_files_are_not_images()
    {
        string zip = Path.Join(_dir.Path, "mac.zip");
        var png = TestImages.Solid(8, 8, SKColors.Red);
        TestImages.WriteZip(zip, new Dictionary<string, byte[]>
        {
            ["a.png"] = png,
            ["__MACOSX/images/._a.png"] = "resource fork"u8.ToArray(),
            ["._b.png"] = "resource fork"u8.ToArray(),
        }, prefix: "");
        using var data = DatasetLoader.Load(Options(new DataSpec.Zip(zip), fraction: 0));
        Assert.Equal((1, 0), (data.Description.Decoded, data.Description.Skipped));
    }

    [Fact]
    public void Gray_output_has_one_channel()
    {
        string root = Path.Join(_dir.Path, "photos");
        TestImages.WriteFolder(root, new Dictionary<string, byte[]> { ["r.png"] = TestImages.Solid(8, 8, SKColors.Red) });
        using var data = DatasetLoader.Load(Options(new DataSpec.Folder(root), size: 4) with { Channels = 1 });
        Assert.Equal(1, data.Train.Channels);
        Assert.All(TestImages.Bytes(data.Train), v => Assert.Equal(77, v));
    }

    [Fact]
    public void Cancellation_stops_the_load()
    {
        string root = Path.Join(_dir.Path, "photos");
        TestImages.WriteFolder(root, TestImages.MessyDataSet());
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => DatasetLoader.Load(Options(new DataSpec.Folder(root)), null, cancelled.Token));
    }

    [Fact]
    public void Corrupt_zip_entries_are_skipped()
    {
        string zip = Path.Join(_dir.Path, "damaged.zip");
        var good = TestImages.Encode(32, 32, (x, y) => new SKColor((byte)(x * 8), (byte)(y * 8), 0));
        TestImages.WriteZip(zip, new Dictionary<string, byte[]> { ["a.png"] = good, ["b.png"] = good });
        // Overwrite the middle of the second entry's compressed data (it follows the first entry's data).
        var bytes = File.ReadAllBytes(zip);
        using (var archive = new ZipArchive(new MemoryStream(bytes)))
            Assert.Equal(2, archive.Entries.Count);
        int second = IndexOfLocalHeader(bytes, 1);
        for (int i = second + 60; i < second + 90; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(zip, bytes);

        using var data = DatasetLoader.Load(Options(new DataSpec.Zip(zip), fraction: 0));
        Assert.Equal((1, 1), (data.Description.Decoded, data.Description.Skipped));
    }

    /// <summary>Offset of the n-th local file header ("PK\x03\x04").</summary>
    private static int IndexOfLocalHeader(byte[] zip, int n)
    {
        for (int i = 0, seen = 0; i + 4 <= zip.Length; i++)
            if (zip[i] == 'P' && zip[i + 1] == 'K' && zip[i + 2] == 3 && zip[i + 3] == 4 && seen++ == n) return i;
        throw new InvalidOperationException("no such entry");
    }
}
