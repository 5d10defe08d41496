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
    public DecodedImages(Tensor pixels)
    {
        if (pixels.dtype != ScalarType.Byte || pixels.dim() != 4 || pixels.shape[1] != pixels.shape[2])
            throw new ArgumentException($"expected a (N, S, S, C) uint8 tensor, got {pixels.dtype} {string.Join('x', pixels.shape)}");
        Pixels = pixels.DetachFromDisposeScope();
    }

    /// <summary>(N, S, S, C) uint8.</summary>
    public Tensor Pixels { get; }
    public int Count => (int)Pixels.shape[0];
    public int Size => (int)Pixels.shape[1];
    public int Channels => (int)Pixels.shape[3];

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

    public long ByteLength => (long)Count * Size * Size * Channels;

    /// <summary>A copy on <paramref name="device"/> (still uint8: 4× smaller than float), so batches are drawn there.</summary>
    public DecodedImages To(Device device) => new(Pixels.to(device));

    public void Dispose() => Pixels.Dispose();
}
