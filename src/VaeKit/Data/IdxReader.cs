using System.Buffers.Binary;
using System.IO.Compression;

namespace VaeKit.Data;

/// <summary>
/// Reads IDX3 unsigned-byte image files (the MNIST / Fashion-MNIST format): a big-endian header — magic 0x00000803
/// (two zero bytes, type 0x08 = ubyte, 3 dimensions), count, rows, columns — then count·rows·columns pixel bytes.
/// Gzip-compressed files are recognised by their content (1F 8B), not their name.
/// </summary>
public static class IdxReader
{
    /// <summary>The magic number of a 3-dimensional unsigned-byte IDX file.</summary>
    public const int ImageMagic = 0x00000803;

    /// <summary>The magic number of a 1-dimensional unsigned-byte IDX file (labels).</summary>
    public const int LabelMagic = 0x00000801;

    /// <summary>
    /// <paramref name="Count"/> images of <paramref name="Rows"/>×<paramref name="Columns"/> bytes each, concatenated
    /// row-major in <paramref name="Pixels"/> (length Count·Rows·Columns).
    /// </summary>
    public sealed record Images(int Count, int Rows, int Columns, byte[] Pixels)
    {
        /// <summary>Bytes of image <paramref name="index"/> (Rows·Columns).</summary>
        public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(checked(index * Rows * Columns), Rows * Columns);
    }

    /// <summary>Reads an IDX3 image file, gzip-compressed or raw.</summary>
    /// <exception cref="BadInputException">The file is missing, unreadable, not IDX3 ubyte, or shorter than its header says.</exception>
    public static Images ReadImages(string path) => ReadFile(path, "image", stream => ReadImages(stream, path));

    private static T ReadFile<T>(string path, string what, Func<Stream, T> read)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            bool gzip = file.ReadByte() == 0x1F && file.ReadByte() == 0x8B;
            file.Position = 0;
            using Stream content = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
            return read(content);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            // FileNotFound is an IOException too; a broken gzip stream is InvalidDataException.
            throw new BadInputException($"Could not read the IDX {what} file {path} ({e.Message}); re-download or reinstall it.", e);
        }
    }

    /// <summary>
    /// Reads an IDX1 label file (magic 0x00000801, count, then one byte per item), gzip-compressed or raw: Fashion-MNIST's
    /// train-labels and t10k-labels, one class 0..9 per image of the matching image file.
    /// </summary>
    /// <exception cref="BadInputException">The file is missing, unreadable, not IDX1 ubyte, or shorter than its header says.</exception>
    public static byte[] ReadLabels(string path) => ReadFile(path, "label", stream =>
    {
        Span<byte> header = stackalloc byte[8];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length)
            throw Bad(path, "label", "is too short to hold an IDX header");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != LabelMagic)
            throw Bad(path, "label", $"is not an IDX1 ubyte label file (magic 0x{magic:X8}, expected 0x{LabelMagic:X8})");
        int count = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        if (count < 0) throw Bad(path, "label", $"has an impossible label count {count}");
        var labels = new byte[count];
        int read = stream.ReadAtLeast(labels, labels.Length, throwOnEndOfStream: false);
        if (read < labels.Length)
            throw Bad(path, "label", $"is truncated: its header promises {count} labels but only {read} are there");
        return labels;
    });

    /// <summary>Reads IDX3 images from an uncompressed stream; <paramref name="name"/> is used in error messages.</summary>
    /// <exception cref="BadInputException">Not IDX3 ubyte, or shorter than its header says.</exception>
    public static Images ReadImages(Stream stream, string name)
    {
        Span<byte> header = stackalloc byte[16];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length)
            throw Bad(name, "is too short to hold an IDX header");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != ImageMagic)
            throw Bad(name, $"is not an IDX3 ubyte image file (magic 0x{magic:X8}, expected 0x{ImageMagic:X8})");
        int count = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        int rows = BinaryPrimitives.ReadInt32BigEndian(header[8..]);
        int columns = BinaryPrimitives.ReadInt32BigEndian(header[12..]);
        if (count < 0 || rows <= 0 || columns <= 0 || (long)count * rows * columns > Array.MaxLength)
            throw Bad(name, $"has an impossible IDX shape {count}×{rows}×{columns}");

        var pixels = GC.AllocateUninitializedArray<byte>(count * rows * columns);
        int read = stream.ReadAtLeast(pixels, pixels.Length, throwOnEndOfStream: false);
        if (read < pixels.Length)
            throw Bad(name, $"is truncated: its header promises {count} images of {rows}×{columns} but only {read} of {pixels.Length} pixel bytes are there");
        return new Images(count, rows, columns, pixels);
    }

    private static BadInputException Bad(string name, string what) => Bad(name, "image", what);

    private static BadInputException Bad(string name, string kind, string what) =>
        new($"The IDX {kind} file {name} {what}; re-download or reinstall it.");
}
