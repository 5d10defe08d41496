using SkiaSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VaeKit.Imaging;

/// <summary>Tiles image batches into one picture and writes it as PNG (SkiaSharp), atomically.</summary>
public static class ImageGrid
{
    /// <summary>
    /// images (N, C, h, w) float in [0, 1], C = 1 or 3 → (H, W, 3) uint8 grid with <paramref name="columns"/> columns,
    /// filled row by row, separated by <paramref name="padding"/> light-grey pixels, each image enlarged
    /// <paramref name="scale"/>× with nearest-neighbour so small images stay crisp.
    /// </summary>
    public static Tensor Make(Tensor images, int columns, int padding = 2, int scale = 1)
    {
        using var scope = NewDisposeScope();
        var x = images.detach().cpu().to_type(ScalarType.Float32).clamp(0, 1);
        if (x.shape[1] == 1) x = x.expand(-1, 3, -1, -1);
        if (scale > 1) x = x.repeat_interleave(scale, dim: 2).repeat_interleave(scale, dim: 3);
        long n = x.shape[0], h = x.shape[2], w = x.shape[3];
        long cols = Math.Min(columns, n), rows = (n + cols - 1) / cols;
        const float padValue = Background;

        if (rows * cols > n)   // fill the last row with background
            x = cat([x, full(rows * cols - n, 3, h, w, padValue)], 0);
        x = F.pad(x, [padding, 0, padding, 0], value: padValue);                 // (R·C, 3, h+p, w+p), pad left/top
        x = x.view(rows, cols, 3, h + padding, w + padding)
             .permute(2, 0, 3, 1, 4)
             .reshape(3, rows * (h + padding), cols * (w + padding));
        x = F.pad(x, [0, padding, 0, padding], value: padValue);                 // close the right/bottom border
        return x.mul(255).round_().to_type(ScalarType.Byte).permute(1, 2, 0).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pairs rows: originals (N, C, h, w) above their reconstructions, <paramref name="columns"/> per row. A short last
    /// row is filled with background tiles so every original stays above its own reconstruction; pass the result
    /// to <see cref="Make"/> with the same column count.
    /// </summary>
    public static Tensor Interleave(Tensor originals, Tensor reconstructions, int columns)
    {
        using var scope = NewDisposeScope();
        var chunks = new List<Tensor>();
        for (long start = 0; start < originals.shape[0]; start += columns)
        {
            long length = Math.Min(columns, originals.shape[0] - start);
            chunks.Add(PadRow(originals.narrow(0, start, length).cpu(), columns));
            chunks.Add(PadRow(reconstructions.narrow(0, start, length).cpu(), columns));
        }
        return cat(chunks, 0).MoveToOuterDisposeScope();
    }

    private const float Background = 0.85f;

    private static Tensor PadRow(Tensor row, int columns) =>
        row.shape[0] == columns
            ? row
            : cat([row, full([columns - row.shape[0], row.shape[1], row.shape[2], row.shape[3]], Background)], 0);

    /// <summary>Encodes an (H, W, 3) or (H, W, 1) uint8 tensor as PNG and writes it atomically.</summary>
    public static void SavePng(Tensor hwc, string path)
    {
        byte[] png = EncodePng(hwc);
        try
        {
            AtomicFile.Write(path, stream => stream.Write(png));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new BadInputException($"Cannot write {path}: {e.Message}", e);
        }
    }

    /// <summary>The PNG bytes of an (H, W, 3) or (H, W, 1) uint8 tensor (for a page that embeds its pictures).</summary>
    public static byte[] EncodePng(Tensor hwc)
    {
        using var scope = NewDisposeScope();
        int height = (int)hwc.shape[0], width = (int)hwc.shape[1];
        var rgb = hwc.shape[2] == 1 ? hwc.expand(-1, -1, 3) : hwc;
        var rgba = cat([rgb.cpu(), full(height, width, 1, 255, ScalarType.Byte)], 2).contiguous();

        using var image = SKImage.FromPixelCopy(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba.bytes);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
