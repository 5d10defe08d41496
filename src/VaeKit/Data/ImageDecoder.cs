using System.Runtime.InteropServices;
using SkiaSharp;

namespace VaeKit.Data;

/// <summary>
/// Turns one encoded image (JPEG, PNG, BMP, GIF, WebP…) into a square Size×Size×Channels uint8 image: decode with
/// SKCodec, apply the EXIF orientation, center-crop to a square, resize with an antialiasing filter, composite
/// transparency on white, and convert to RGB or gray (ITU-R BT.601 luma). Also resizes raw gray images (Fashion-MNIST).
/// Holds reusable Skia bitmaps, so it is not thread-safe: use one per worker thread.
/// </summary>
internal sealed class ImageDecoder : IDisposable
{
    /// <summary>Largest decoded bitmap accepted (pixels); bigger files are skipped rather than risking a multi-GB buffer.</summary>
    public const long MaxDecodedPixels = 128L * 1024 * 1024;

    private SKBitmap? _source;            // decoded full image, reused while consecutive images share dimensions
    private readonly SKBitmap _target;    // Size×Size premultiplied RGBA (or Gray8 for the gray path, see _grayTarget)
    private SKBitmap? _graySource, _grayTarget;

    /// <param name="size">Output side in pixels (≥ 1).</param>
    /// <param name="channels">1 (gray) or 3 (RGB).</param>
    public ImageDecoder(int size, int channels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 or 3");
        Size = size;
        Channels = channels;
        _target = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
    }

    /// <summary>Side of the square output images, pixels.</summary>
    public int Size { get; }
    /// <summary>Channels of the output images: 1 (grey) or 3 (RGB).</summary>
    public int Channels { get; }

    /// <summary>Bytes of one output image: Size·Size·Channels.</summary>
    public int OutputLength => Size * Size * Channels;

    /// <summary>
    /// Decodes <paramref name="encoded"/> into <paramref name="dest"/> (<see cref="OutputLength"/> bytes, row-major,
    /// channels last). Returns false with a short <paramref name="error"/> (e.g. "truncated", "not an image") when the
    /// bytes are empty, unrecognised, or anything but a complete, valid image; dest is then unspecified.
    /// </summary>
    public bool TryDecode(ReadOnlySpan<byte> encoded, Span<byte> dest, out string? error)
    {
        if (dest.Length != OutputLength) throw new ArgumentException($"dest must hold {OutputLength} bytes", nameof(dest));
        if (encoded.IsEmpty) { error = "empty file"; return false; }

        using var data = SKData.CreateCopy(encoded);
        // The codec takes ownership of the stream (also when creation fails), so the stream is not disposed here.
        using var codec = SKCodec.Create(new SKMemoryStream(data), out var created);
        if (codec is null) { error = Describe(created); return false; }

        var full = codec.Info.Size;
        if ((long)full.Width * full.Height > MaxDecodedPixels) { error = $"too large ({full.Width}×{full.Height})"; return false; }

        // No JPEG DCT-scaled decoding (1/2, 1/4, 1/8), although it would be faster for big photos: in SkiaSharp
        // 2.88.6 both GetScaledDimensions and GetPixels at a scaled size crash the process in
        // jpeg_calc_output_dimensions (mono/SkiaSharp#2645; reproduced here). Decode at full size instead.
        var dims = full;   // the size decoded (kept separate so a scaled decode can come back with a fixed SkiaSharp)
        if (_source is null || _source.Width != dims.Width || _source.Height != dims.Height)
        {
            _source?.Dispose();
            _source = new SKBitmap(new SKImageInfo(dims.Width, dims.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        }
        // Premultiplied: resampling premultiplied colour is what keeps transparent pixels from bleeding their RGB.
        var result = codec.GetPixels(_source.Info, _source.GetPixels());
        if (result != SKCodecResult.Success) { error = Describe(result); return false; }

        using var whole = _source.PeekPixels()!;
        int side = Math.Min(dims.Width, dims.Height);
        using var square = whole.ExtractSubset(SKRectI.Create((dims.Width - side) / 2, (dims.Height - side) / 2, side, side))!;
        using var target = _target.PeekPixels()!;
        // At 1:1 copy, since the bicubic (Mitchell) filter would blur slightly.
        bool ok = side == Size ? square.ReadPixels(target) : square.ScalePixels(target, Sampling(side));
        if (!ok) { error = "could not be resized"; return false; }

        WriteOutput(_target.GetPixelSpan(), Size, codec.EncodedOrigin, Channels, dest);
        error = null;
        return true;
    }

    /// <summary>
    /// What SkiaSharp 2.88's FilterQuality.High did: mipmaps when downscaling, so a fine checkerboard averages to grey
    /// instead of aliasing (tested), and bicubic (Mitchell) when upscaling.
    /// </summary>
    private SKSamplingOptions Sampling(int side) =>
        side > Size ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear) : new SKSamplingOptions(SKCubicResampler.Mitchell);

    /// <summary>
    /// Center-crops and resizes a raw gray image (width×height bytes, row-major) into <paramref name="dest"/>
    /// (<see cref="OutputLength"/> bytes), replicating gray into R, G and B when Channels = 3.
    /// </summary>
    public void FromGray(ReadOnlySpan<byte> gray, int width, int height, Span<byte> dest)
    {
        if (gray.Length != width * height) throw new ArgumentException($"expected {width}×{height} bytes", nameof(gray));
        if (dest.Length != OutputLength) throw new ArgumentException($"dest must hold {OutputLength} bytes", nameof(dest));

        int side = Math.Min(width, height);
        ReadOnlySpan<byte> sized;
        if (side == Size && width == height) sized = gray;
        else
        {
            if (_graySource is null || _graySource.Width != width || _graySource.Height != height)
            {
                _graySource?.Dispose();
                _graySource = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
            }
            _grayTarget ??= new SKBitmap(new SKImageInfo(Size, Size, SKColorType.Gray8, SKAlphaType.Opaque));
            gray.CopyTo(Writable(_graySource));
            using var whole = _graySource.PeekPixels()!;
            using var square = whole.ExtractSubset(SKRectI.Create((width - side) / 2, (height - side) / 2, side, side))!;
            using var target = _grayTarget.PeekPixels()!;
            bool ok = side == Size ? square.ReadPixels(target) : square.ScalePixels(target, Sampling(side));
            if (!ok) throw new InvalidOperationException("Skia could not resize a gray image");
            sized = _grayTarget.GetPixelSpan();
        }

        if (Channels == 1) { sized.CopyTo(dest); return; }
        for (int i = 0, o = 0; i < sized.Length; i++, o += 3)
            dest[o] = dest[o + 1] = dest[o + 2] = sized[i];
    }

    /// <summary>RGB (3 bytes/pixel) to gray (1 byte/pixel) with ITU-R BT.601 weights; <paramref name="gray"/> holds rgb.Length/3 bytes.</summary>
    public static void RgbToGray(ReadOnlySpan<byte> rgb, Span<byte> gray)
    {
        if (rgb.Length != gray.Length * 3) throw new ArgumentException("rgb must hold three bytes per gray byte");
        for (int i = 0, o = 0; o < gray.Length; i += 3, o++)
            gray[o] = Luma(rgb[i], rgb[i + 1], rgb[i + 2]);
    }

    /// <summary>Y = 0.299 R + 0.587 G + 0.114 B in 8-bit fixed point (77 + 150 + 29 = 256, so white stays 255).</summary>
    private static byte Luma(int r, int g, int b) => (byte)((77 * r + 150 * g + 29 * b + 128) >> 8);

    /// <summary>
    /// Premultiplied RGBA (size×size) to dest, composited on white (c + 255 − a is "over white" for premultiplied c),
    /// with the EXIF orientation undone so the image appears as a viewer shows it.
    /// </summary>
    private static void WriteOutput(ReadOnlySpan<byte> rgba, int size, SKEncodedOrigin origin, int channels, Span<byte> dest)
    {
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                // (sx, sy): the stored pixel that the viewer sees at (x, y); the crop is centred and square, so the
                // orientation can be applied after it.
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (size - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (size - 1 - x, size - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, size - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, size - 1 - x),
                    SKEncodedOrigin.RightBottom => (size - 1 - y, size - 1 - x),
                    SKEncodedOrigin.LeftBottom => (size - 1 - y, x),
                    _ => (x, y),
                };
                int s = (sy * size + sx) * 4;
                int white = 255 - rgba[s + 3];
                int r = Math.Min(255, rgba[s] + white), g = Math.Min(255, rgba[s + 1] + white), b = Math.Min(255, rgba[s + 2] + white);
                int o = (y * size + x) * channels;
                if (channels == 1) dest[o] = Luma(r, g, b);
                else { dest[o] = (byte)r; dest[o + 1] = (byte)g; dest[o + 2] = (byte)b; }
            }
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.Unimplemented => "not an image (unrecognised format)",
        SKCodecResult.IncompleteInput => "truncated",
        SKCodecResult.ErrorInInput => "corrupt",
        SKCodecResult.InvalidInput => "corrupt (invalid input)",
        _ => $"cannot be decoded ({result})",
    };

    /// <summary>The bitmap's pixel memory as a writable span (Skia allocated it; GetPixelSpan is read-only by signature only).</summary>
    private static Span<byte> Writable(SKBitmap bitmap)
    {
        var pixels = bitmap.GetPixelSpan();
        return MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(pixels), pixels.Length);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _source?.Dispose();
        _target.Dispose();
        _graySource?.Dispose();
        _grayTarget?.Dispose();
    }
}
