using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Serving;

/// <summary>Limits on what <c>vae serve</c> accepts from a browser.</summary>
public sealed record UploadLimits
{
    /// <summary>Largest request body in bytes (an uploaded image, or a JSON request); larger ones get 413.</summary>
    public long MaxBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Longest side in pixels an uploaded image may declare; checked from its header, before any decoding.</summary>
    public int MaxSide { get; init; } = 4096;

    /// <summary>Most pixels (width · height) an uploaded image may declare: 16.7 Mpx, about 64 MB decoded.</summary>
    public long MaxPixels { get; init; } = 4096L * 4096;
}

/// <summary>
/// Uploaded images in, PNGs out. An upload is identified and its dimensions are read from the header (SkiaSharp's
/// codec info, no pixels decoded), so a decompression bomb (a few KB of PNG declaring 50,000² pixels) is refused
/// before a byte of it is inflated; only then is it decoded, centre-cropped and resized by <see cref="ImageDecoder"/>
/// exactly as training data is.
/// </summary>
public static class ServedImages
{
    /// <summary>
    /// Encoded image bytes → size² · channels uint8 pixels (rows, then channels last), or a
    /// <see cref="BadInputException"/> saying why not (empty, not an image, too large, truncated).
    /// </summary>
    public static byte[] Decode(byte[] encoded, int size, int channels, UploadLimits limits)
    {
        if (encoded.Length == 0) throw new BadInputException("The upload is empty; send an image file (PNG, JPEG, WebP, GIF or BMP).");
        if (encoded.Length > limits.MaxBytes)
            throw new BadInputException($"The upload has {encoded.Length:N0} bytes; the limit is {limits.MaxBytes:N0}.");

        using (var data = SKData.CreateCopy(encoded))
        using (var codec = SKCodec.Create(data))
        {
            if (codec is null) throw new BadInputException("The upload is not an image SkiaSharp can read (PNG, JPEG, WebP, GIF or BMP).");
            var (w, h) = (codec.Info.Width, codec.Info.Height);
            if (w <= 0 || h <= 0 || w > limits.MaxSide || h > limits.MaxSide || (long)w * h > limits.MaxPixels)
                throw new BadInputException(
                    $"The image declares {w}×{h} pixels; the limit is {limits.MaxSide} px a side and {limits.MaxPixels:N0} pixels. Scale it down first.");
        }

        var pixels = new byte[size * size * channels];
        using var decoder = new ImageDecoder(size, channels);
        if (!decoder.TryDecode(encoded, pixels, out var error))
            throw new BadInputException($"The image cannot be used: {error}.");
        return pixels;
    }

    /// <summary>width · height · channels uint8 pixels (1 = grey, 3 = RGB; rows first) → PNG bytes.</summary>
    public static byte[] EncodePng(byte[] pixels, int width, int height, int channels)
    {
        if (channels is not (1 or 3) || pixels.Length != width * height * channels)
            throw new ArgumentException($"expected {width}×{height}×(1 or 3) bytes, got {pixels.Length}", nameof(pixels));
        var rgba = new byte[width * height * 4];
        for (int i = 0, o = 0; o < rgba.Length; i += channels, o += 4)
        {
            rgba[o] = pixels[i];
            rgba[o + 1] = pixels[channels == 3 ? i + 1 : i];
            rgba[o + 2] = pixels[channels == 3 ? i + 2 : i];
            rgba[o + 3] = 255;
        }
        using var image = SKImage.FromPixelCopy(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }
}
