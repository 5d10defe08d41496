using System.IO.Compression;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private readonly DataTempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A hand-made IDX3 file: 3 images of 2×4 pixels, pixel value = 10·image + position.</summary>
    private static byte[] TinyIdx(int magic = 0x00000803, int count = 3)
    {
        var header = new byte[] { (byte)(magic >> 24), (byte)(magic >> 16), (byte)(magic >> 8), (byte)magic, 0, 0, 0, (byte)count, 0, 0, 0, 2, 0, 0, 0, 4 };
        var pixels = Enumerable.Range(0, 3 * 8).Select(i => (byte)(10 * (i / 8) + i % 8));
        return [.. header, .. pixels];
    }

    private static byte[] Gzip(byte[] raw)
    {
        var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Fastest)) gz.Write(raw);
        return output.ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_a_tiny_file_raw_or_gzipped(bool gzipped)
    {
        string path = _dir.File("tiny-idx3-ubyte");   // compression is detected from content, not the name
        File.WriteAllBytes(path, gzipped ? Gzip(TinyIdx()) : TinyIdx());
        var images = IdxReader.ReadImages(path);
        Assert.Equal((3, 2, 4), (images.Count, images.Rows, images.Columns));
        Assert.Equal(24, images.Pixels.Length);
        Assert.Equal(new byte[] { 20, 21, 22, 23, 24, 25, 26, 27 }, images.Image(2).ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_truncated_file_is_bad_input(bool gzipped)
    {
        string path = _dir.File("cut.gz");
        var raw = TinyIdx()[..20];
        File.WriteAllBytes(path, gzipped ? Gzip(raw) : raw);
        var e = Assert.Throws<BadInputException>(() => IdxReader.ReadImages(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void A_cut_gzip_stream_is_bad_input()
    {
        string path = _dir.File("cut-stream.gz");
        var gz = Gzip(TinyIdx());
        File.WriteAllBytes(path, gz[..(gz.Length - 12)]);
        Assert.Contains(path, Assert.Throws<BadInputException>(() => IdxReader.ReadImages(path)).Message);
    }

    [Fact]
    public void A_wrong_magic_or_short_header_is_bad_input()
    {
        string labels = _dir.File("labels");
        File.WriteAllBytes(labels, TinyIdx(magic: 0x00000801));   // an IDX1 label file
        Assert.Contains("magic 0x00000801", Assert.Throws<BadInputException>(() => IdxReader.ReadImages(labels)).Message);

        string shortFile = _dir.File("short");
        File.WriteAllBytes(shortFile, [0, 0, 8, 3]);
        Assert.Contains("too short", Assert.Throws<BadInputException>(() => IdxReader.ReadImages(shortFile)).Message);
    }

    [Fact]
    public void A_missing_file_is_bad_input() =>
        Assert.Contains("nope.gz", Assert.Throws<BadInputException>(() => IdxReader.ReadImages(_dir.File("nope.gz"))).Message);
}
