using System.Buffers.Binary;
using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

public class ImageDecoderTests
{
    private static byte[] Decode(byte[] encoded, int size, int channels)
    {
        using var decoder = new ImageDecoder(size, channels);
        var output = new byte[decoder.OutputLength];
        Assert.True(decoder.TryDecode(encoded, output, out string? error), error);
        Assert.Null(error);
        return output;
    }

    private static void AssertAll(byte[] pixels, int channels, params byte[] expected)
    {
        for (int i = 0; i < pixels.Length; i += channels)
            for (int c = 0; c < channels; c++)
                Assert.InRange(pixels[i + c], expected[c] - 2, expected[c] + 2);
    }

    [Fact]
    public void A_wide_image_is_center_cropped_to_its_middle()
    {
        // 300×100: red | green | blue bands of 100 px each. The centred 100×100 square is the green band.
        var png = TestImages.Encode(300, 100, (x, _) => x < 100 ? SKColors.Red : x < 200 ? SKColors.Lime : SKColors.Blue);
        AssertAll(Decode(png, 16, 3), 3, 0, 255, 0);
    }

    [Fact]
    public void A_tall_image_is_center_cropped_too()
    {
        var png = TestImages.Encode(50, 150, (_, y) => y < 50 ? SKColors.Red : y < 100 ? SKColors.Lime : SKColors.Blue);
        AssertAll(Decode(png, 10, 3), 3, 0, 255, 0);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(37)]   // non-integer ratio: nearest-neighbour would hit pure black and white pixels
    public void A_fine_checkerboard_downscales_to_grey_not_to_aliasing(int size)
    {
        var png = TestImages.Encode(512, 512, (x, y) => ((x + y) & 1) == 0 ? SKColors.Black : SKColors.White);
        var output = Decode(png, size, 3);
        Assert.All(output, v => Assert.InRange(v, 118, 138));
    }

    [Fact]
    public void Same_size_images_pass_through_unchanged()
    {
        var png = TestImages.Encode(8, 8, (x, y) => new SKColor((byte)(x * 30), (byte)(y * 30), (byte)(x * y)));
        var output = Decode(png, 8, 3);
        Assert.Equal(new byte[] { 7 * 30, 2 * 30, 14 }, output.AsSpan((2 * 8 + 7) * 3, 3).ToArray());
    }

    [Fact]
    public void Gray_is_bt601_luma()
    {
        // Y = 0.299 R + 0.587 G + 0.114 B
        Assert.Equal(77, Decode(TestImages.Solid(8, 8, SKColors.Red), 4, 1)[0]);
        Assert.Equal(149, Decode(TestImages.Solid(8, 8, SKColors.Lime), 4, 1)[0]);
        Assert.Equal(29, Decode(TestImages.Solid(8, 8, SKColors.Blue), 4, 1)[0]);
        Assert.Equal(255, Decode(TestImages.Solid(8, 8, SKColors.White), 4, 1)[0]);
        var gray = new byte[2];
        ImageDecoder.RgbToGray([255, 255, 255, 10, 20, 30], gray);
        Assert.Equal(new byte[] { 255, 18 }, gray);
    }

    [Fact]
    public void Transparency_is_composited_on_white()
    {
        AssertAll(Decode(TestImages.Solid(8, 8, SKColors.Transparent), 4, 3), 3, 255, 255, 255);
        AssertAll(Decode(TestImages.Solid(8, 8, new SKColor(0, 0, 0, 128)), 4, 3), 3, 127, 127, 127);
    }

    [Fact]
    public void Exif_orientation_is_applied()
    {
        // Stored: left half red, right half blue. EXIF orientation 6 = "rotate 90° clockwise to display", which
        // brings the stored left edge to the top.
        var jpeg = TestImages.Encode(32, 32, (x, _) => x < 16 ? SKColors.Red : SKColors.Blue, SKEncodedImageFormat.Jpeg);
        var output = Decode(WithExifOrientation(jpeg, 6), 8, 3);
        Assert.True(output[(1 * 8 + 4) * 3] > 200 && output[(1 * 8 + 4) * 3 + 2] < 50, "top should be red");
        Assert.True(output[(6 * 8 + 4) * 3] < 50 && output[(6 * 8 + 4) * 3 + 2] > 200, "bottom should be blue");
    }

    [Theory]
    [InlineData(0, "empty file")]
    [InlineData(1, "truncated")]
    [InlineData(2, "not an image")]
    public void Broken_input_fails_with_a_reason(int kind, string reason)
    {
        var jpeg = TestImages.Encode(40, 40, (x, y) => new SKColor((byte)(x * 6), (byte)(y * 6), 0), SKEncodedImageFormat.Jpeg);
        byte[] input = kind switch { 0 => [], 1 => jpeg[..(jpeg.Length / 2)], _ => "GIF? no, text"u8.ToArray() };
        using var decoder = new ImageDecoder(8, 3);
        Assert.False(decoder.TryDecode(input, new byte[decoder.OutputLength], out string? error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void Gray_sources_are_resized_and_can_become_rgb()
    {
        using var decoder = new ImageDecoder(14, 3);
        var gray = new byte[28 * 28];
        Array.Fill(gray, (byte)100);
        var output = new byte[decoder.OutputLength];
        decoder.FromGray(gray, 28, 28, output);
        Assert.All(output, v => Assert.Equal(100, v));

        // a 2×2-pixel checkerboard at 28 px averages out at 14 px
        for (int y = 0; y < 28; y++) for (int x = 0; x < 28; x++) gray[y * 28 + x] = ((x + y) & 1) == 0 ? (byte)0 : (byte)255;
        using var single = new ImageDecoder(7, 1);
        var small = new byte[single.OutputLength];
        single.FromGray(gray, 28, 28, small);
        Assert.All(small, v => Assert.InRange(v, 118, 138));
    }

    /// <summary>Inserts a minimal big-endian EXIF APP1 segment holding only the Orientation tag right after SOI.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        var app1 = new byte[36];
        BinaryPrimitives.WriteUInt16BigEndian(app1, 0xFFE1);
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(2), 34);           // segment length, excluding the marker
        "Exif\0\0"u8.CopyTo(app1.AsSpan(4));
        "MM\0*"u8.CopyTo(app1.AsSpan(10));                                    // TIFF header, big-endian
        BinaryPrimitives.WriteUInt32BigEndian(app1.AsSpan(14), 8);            // first IFD right after the header
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(18), 1);            // one entry
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(20), 0x0112);       // Orientation
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(22), 3);            // SHORT
        BinaryPrimitives.WriteUInt32BigEndian(app1.AsSpan(24), 1);            // count
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(28), orientation);  // value (left-justified), then 2 pad + next IFD 0
        return [.. jpeg[..2], .. app1, .. jpeg[2..]];
    }
}
