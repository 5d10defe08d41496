using VaeKit.Imaging;
using static TorchSharp.torch;

namespace VaeKit.Tests.Imaging;

public class ImageGridTests
{
    [Fact]
    public void Each_original_sits_above_its_reconstruction_even_in_a_short_last_row()
    {
        using var scope = NewDisposeScope();
        var originals = zeros(13, 3, 4, 4);                 // black
        var reconstructions = ones(13, 3, 4, 4);            // white

        var pairs = ImageGrid.Interleave(originals, reconstructions, columns: 8);   // rows: 8 orig, 8 rec, 5 orig + 3 blank, 5 rec + 3 blank
        Assert.Equal(32, pairs.shape[0]);
        Assert.Equal(0f, pairs[16 + 4].max().item<float>());          // row 3, column 5: the 13th original
        Assert.Equal(1f, pairs[24 + 4].min().item<float>());          // right below it: its reconstruction
        Assert.Equal(0.85f, pairs[16 + 5].mean().item<float>(), 5);   // then background, not the next row's images

        var grid = ImageGrid.Make(pairs, columns: 8, padding: 2);
        Assert.Equal(new long[] { 4 * 6 + 2, 8 * 6 + 2, 3 }, grid.shape);
    }

    [Fact]
    public void Grids_round_trip_through_png()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var images = rand(5, 1, 8, 8);
        var grid = ImageGrid.Make(images, columns: 3, padding: 1, scale: 2);
        ImageGrid.SavePng(grid, dir["g.png"]);

        using var bitmap = SkiaSharp.SKBitmap.Decode(dir["g.png"]);
        Assert.Equal(3 * 17 + 1, bitmap.Width);
        Assert.Equal(2 * 17 + 1, bitmap.Height);
        var pixel = bitmap.GetPixel(1, 1);                                   // first image, top-left, grey → R = G = B
        byte expected = (byte)Math.Round(images[0, 0, 0, 0].item<float>() * 255);
        Assert.Equal((expected, expected, expected), (pixel.Red, pixel.Green, pixel.Blue));
    }
}
