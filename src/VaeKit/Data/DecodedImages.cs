using TorchSharp;
using static TorchSharp.torch;

namespace VaeKit.Data;

/// <summary>
/// A decoded image set held as one uint8 tensor of shape (N, S, S, C), channels last, values 0..255.
/// The tensor is detached from every dispose scope and owned by this object. Storing uint8 keeps 63k anime faces
/// at 64 px in 780 MB (a float copy would be 3.1 GB); batches are converted to float on the fly.
/// </summary>
public sealed class DecodedImages : IDisposable
{
    /// <summary>(B, s, s, C) uint8 → (B, C, s, s) float32 in [0, 1] on <paramref name="device"/>: what every model takes.
    /// The uint8 crosses to the device (4× less traffic than float). Training, evaluation, serving and inference all
    /// convert through here.</summary>
    public static Tensor ToModelInput(Tensor pixels, Device device) =>
        pixels.to(device).permute(0, 3, 1, 2).to_type(ScalarType.Float32).div_(255f).contiguous();

    /// <summary>
    /// Wraps (and takes ownership of) an (N, S, S, C) uint8 tensor, channels last, values 0..255, on any device; it
    /// is detached from dispose scopes, so dispose this object (not the tensor) when done. For float images in
    /// [0, 1] laid out (N, C, S, S) use <see cref="FromFloat"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Not a 4-D uint8 tensor with square images.</exception>
    public DecodedImages(Tensor pixels)
    {
        if (pixels.dtype != ScalarType.Byte || pixels.dim() != 4 || pixels.shape[1] != pixels.shape[2])
            throw new ArgumentException($"expected a (N, S, S, C) uint8 tensor, got {pixels.dtype} {string.Join('x', pixels.shape)}");
        Pixels = pixels.DetachFromDisposeScope();
    }

    /// <summary>(N, S, S, C) uint8.</summary>
    public Tensor Pixels { get; }
    /// <summary>N, the number of images.</summary>
    public int Count => (int)Pixels.shape[0];

    /// <summary>S, the side of the square images in pixels.</summary>
    public int Size => (int)Pixels.shape[1];

    /// <summary>C: 1 (gray) or 3 (RGB).</summary>
    public int Channels => (int)Pixels.shape[3];

    /// <summary>Images per block when converting or hashing: bounds the temporary memory to a few MB at any set size.</summary>
    private const int Block = 256;

    /// <summary>
    /// Images from a float tensor laid out as a model takes them: (N, C, S, S), values in [0, 1], on any device. Each
    /// value v becomes round(255·v) in a new (N, S, S, C) uint8 tensor on the CPU; <paramref name="images"/> is left as
    /// it was (and stays the caller's to dispose). Converted in blocks, so no float copy of the whole set is made.
    /// </summary>
    /// <exception cref="ArgumentException">Not a 4-D (N, C, S, S) floating-point tensor with C = 1 or 3, or a value
    /// outside [0, 1] (images scaled 0..255 must be divided by 255 first).</exception>
    public static DecodedImages FromFloat(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (!images.is_floating_point() || images.dim() != 4 || images.shape[2] != images.shape[3] || images.shape[1] is not (1 or 3))
            throw new ArgumentException($"expected a (N, C, S, S) floating-point tensor with C = 1 or 3, got {images.dtype} {string.Join('x', images.shape)}", nameof(images));
        int count = (int)images.shape[0], channels = (int)images.shape[1], size = (int)images.shape[2];
        var result = Allocate(count, size, channels);
        try
        {
            for (int start = 0; start < count; start += Block)
            {
                using var scope = NewDisposeScope();
                var block = images.narrow(0, start, Math.Min(Block, count - start)).to(ScalarType.Float32).cpu();
                double low = block.min().item<float>(), high = block.max().item<float>();
                if (!(low >= 0 && high <= 1))   // also catches NaN
                    throw new ArgumentException($"image values must lie in [0, 1], found {low:G4}..{high:G4} in images {start}.. (divide 0..255 values by 255)", nameof(images));
                var bytes = block.mul(255f).round_().to(ScalarType.Byte).permute(0, 2, 3, 1);   // (B, S, S, C)
                result.Pixels.narrow(0, start, bytes.shape[0]).copy_(bytes);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>
    /// SHA-256 over the shape and the pixel bytes (row-major, channels last): equal for the same images wherever
    /// they live, different when one byte differs. Read in blocks of images, so a GPU set is copied a little at a time.
    /// </summary>
    public byte[] ContentHash()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        Span<byte> shape = stackalloc byte[4 * 4];
        for (int d = 0; d < 4; d++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(shape[(4 * d)..], (int)Pixels.shape[d]);
        hash.AppendData("vaekit-images/1/"u8);
        hash.AppendData(shape);
        for (int start = 0; start < Count; start += Block)
        {
            using var block = Pixels.narrow(0, start, Math.Min(Block, Count - start)).cpu().contiguous();
            hash.AppendData(block.bytes);
        }
        return hash.GetHashAndReset();
    }

    /// <summary>Allocates an uninitialised (count, size, size, channels) set to be filled through <see cref="ImageSpan"/>.</summary>
    public static DecodedImages Allocate(int count, int size, int channels) =>
        new(torch.empty([count, size, size, channels], ScalarType.Byte));

    /// <summary>
    /// The bytes of image <paramref name="index"/> (S·S·C, row-major, channels last). The span points straight into
    /// the tensor's CPU storage, so writing to disjoint images from several threads is safe.
    /// </summary>
    public Span<byte> ImageSpan(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        using var view = Pixels[index];   // a view; the storage stays alive through Pixels
        return view.bytes;
    }

    /// <summary>Writes the raw bytes (N·S·S·C) to a stream; used by the decode cache.</summary>
    public void WriteTo(Stream stream) => Pixels.WriteBytesToStream(stream);

    /// <summary>Fills the tensor from raw bytes written by <see cref="WriteTo"/>.</summary>
    public void ReadFrom(Stream stream) => Pixels.ReadBytesFromStream(stream);

    /// <summary>N·S·S·C, the bytes the pixels take.</summary>
    public long ByteLength => (long)Count * Size * Size * Channels;

    /// <summary>A copy on <paramref name="device"/> (still uint8: 4× smaller than float), so batches are drawn there.</summary>
    public DecodedImages To(Device device) => new(Pixels.to(device));

    /// <summary>Frees the tensor (its storage goes when no view of it is left).</summary>
    public void Dispose() => Pixels.Dispose();
}
