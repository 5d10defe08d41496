using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace VaeKit.Data;

/// <summary>
/// Every good image of a source, decoded, in source order, before the train/validation split.
/// <paramref name="FixedTrainCount"/>: for sources with their own split (Fashion-MNIST) the first that many images
/// are the training set; null means "split by seed".
/// </summary>
internal sealed record DecodedSet(DecodedImages Images, int Skipped, IReadOnlyList<string> SkippedExamples, int? FixedTrainCount);

/// <summary>
/// On-disk cache of <see cref="DecodedSet"/>s: <c>&lt;root&gt;/datasets/&lt;key&gt;.vkds</c>. Layout: "VKDS", int32 format
/// version, int32 header length, UTF-8 JSON header, N·S·S·C pixel bytes, SHA-256 of the pixel bytes (all integers
/// little-endian). Files are written to a temp name and renamed, and checked (length and hash) on read, so a crash or
/// a damaged file costs a re-decode, never wrong pixels. Caching never fails a load: problems become warnings.
/// </summary>
internal static class DatasetCache
{
    /// <summary>Bump when the file layout or the preprocessing (crop, filter, colour conversion) changes.</summary>
    public const int FormatVersion = 1;

    private static ReadOnlySpan<byte> Magic => "VKDS"u8;
    private const int PrefixLength = 12;          // magic + version + header length
    private const int MaxHeaderLength = 1 << 20;

    private sealed record Header(string Kind, int Count, int Size, int Channels, int Skipped, string[] SkippedExamples, int? FixedTrainCount);

    /// <summary>The cache file name (32 hex digits) for a decoded source at a size and channel count.</summary>
    public static string Key(string kind, byte[] sourceFingerprint, int size, int channels)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // The SkiaSharp version is in the key: another Skia build can resize to slightly different pixels.
        string skia = typeof(SkiaSharp.SKBitmap).Assembly.GetName().Version?.ToString() ?? "?";
        hash.AppendData(Encoding.UTF8.GetBytes($"vaekit-dataset/{FormatVersion}/skia-{skia}/{kind}/{size}/{channels}/"));
        hash.AppendData(sourceFingerprint);
        return Convert.ToHexStringLower(hash.GetHashAndReset(), 0, 16);
    }

    public static string PathFor(string root, string key) => Path.Join(root, "datasets", key + ".vkds");

    /// <summary>Reads a cached set, or returns null when there is none or it is unusable (then warns).</summary>
    public static DecodedSet? TryRead(string path, string kind, int size, int channels, IProgress<DecodeProgress>? progress, CancellationToken cancellationToken)
    {
        DecodedImages? images = null;
        try
        {
            if (!File.Exists(path)) return null;
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            Span<byte> prefix = stackalloc byte[PrefixLength];
            if (file.ReadAtLeast(prefix, PrefixLength, throwOnEndOfStream: false) < PrefixLength || !prefix[..4].SequenceEqual(Magic))
                return Unusable(path, "not a VaeKit cache file", progress);
            if (BinaryPrimitives.ReadInt32LittleEndian(prefix[4..]) != FormatVersion) return Unusable(path, "old format", progress);
            int headerLength = BinaryPrimitives.ReadInt32LittleEndian(prefix[8..]);
            if (headerLength is <= 0 or > MaxHeaderLength) return Unusable(path, "bad header", progress);
            var headerBytes = new byte[headerLength];
            if (file.ReadAtLeast(headerBytes, headerLength, throwOnEndOfStream: false) < headerLength) return Unusable(path, "truncated", progress);
            var header = JsonSerializer.Deserialize<Header>(headerBytes);
            if (header is null || header.SkippedExamples is null || header.Kind != kind || header.Size != size || header.Channels != channels || header.Count <= 0
                || header.FixedTrainCount is < 0 || header.FixedTrainCount > header.Count)
                return Unusable(path, "header does not match", progress);
            long pixelBytes = (long)header.Count * size * size * channels;
            if (file.Length != PrefixLength + headerLength + pixelBytes + SHA256.HashSizeInBytes) return Unusable(path, "wrong length", progress);

            progress?.Report(new DecodeProgress("cache-read", 0, header.Count));
            images = DecodedImages.Allocate(header.Count, size, channels);
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var hashing = new HashingStream(file, pixelBytes, sha);
            using (var buffered = new BufferedStream(hashing, 1 << 20)) images.ReadFrom(buffered);   // hash in 1 MiB blocks
            if (hashing.Remaining != 0) return Unusable(path, "truncated", progress, ref images);
            Span<byte> stored = stackalloc byte[SHA256.HashSizeInBytes];
            if (file.ReadAtLeast(stored, stored.Length, throwOnEndOfStream: false) < stored.Length || !stored.SequenceEqual(sha.GetHashAndReset()))
                return Unusable(path, "checksum mismatch", progress, ref images);
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new DecodeProgress("cache-read", header.Count, header.Count));
            var set = new DecodedSet(images, header.Skipped, header.SkippedExamples, header.FixedTrainCount);
            images = null;
            return set;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return Unusable(path, e.Message, progress, ref images);
        }
        finally
        {
            images?.Dispose();
        }
    }

    /// <summary>Writes a set atomically (temp file + rename). Returns false and warns when it could not.</summary>
    public static bool TryWrite(string path, string kind, DecodedSet set, IProgress<DecodeProgress>? progress)
    {
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var images = set.Images;
            progress?.Report(new DecodeProgress("cache-write", 0, images.Count));
            var header = JsonSerializer.SerializeToUtf8Bytes(new Header(kind, images.Count, images.Size, images.Channels,
                set.Skipped, [.. set.SkippedExamples], set.FixedTrainCount));
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[PrefixLength];
                Magic.CopyTo(prefix);
                BinaryPrimitives.WriteInt32LittleEndian(prefix[4..], FormatVersion);
                BinaryPrimitives.WriteInt32LittleEndian(prefix[8..], header.Length);
                file.Write(prefix);
                file.Write(header);
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                using (var buffered = new BufferedStream(new HashingStream(file, images.ByteLength, sha), 1 << 20))
                    images.WriteTo(buffered);   // flushed on dispose
                file.Write(sha.GetHashAndReset());
                // No fsync: the length and hash checks on read catch a file cut short by a crash.
            }
            File.Move(temp, path, overwrite: true);   // atomic on one file system; readers see old or new, never half
            progress?.Report(new DecodeProgress("cache-write", images.Count, images.Count));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            progress?.Report(DecodeProgress.Warning($"decoded images not cached at {path} ({e.Message})"));
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { /* a stray .tmp is harmless */ }
            return false;
        }
    }

    private static DecodedSet? Unusable(string path, string reason, IProgress<DecodeProgress>? progress)
    {
        progress?.Report(DecodeProgress.Warning($"ignoring cache file {path} ({reason}); decoding again"));
        return null;
    }

    private static DecodedSet? Unusable(string path, string reason, IProgress<DecodeProgress>? progress, ref DecodedImages? images)
    {
        images?.Dispose();
        images = null;
        return Unusable(path, reason, progress);
    }

    /// <summary>
    /// Passes at most <c>limit</c> bytes through (reading or writing) and SHA-256s them. TorchSharp moves tensor bytes
    /// in 1 KiB calls, so callers put a BufferedStream in front; the limit keeps its read-ahead out of the trailer.
    /// </summary>
    /// Disposing it leaves both <paramref name="inner"/> and <paramref name="hash"/> to the caller.
    private sealed class HashingStream(Stream inner, long limit, IncrementalHash hash) : Stream
    {
        public long Remaining { get; private set; } = limit;

        public override int Read(Span<byte> buffer)
        {
            if (buffer.Length > Remaining) buffer = buffer[..(int)Remaining];
            // Fill the request completely: a short read could be taken for the end of the data by the caller.
            int n = inner.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            hash.AppendData(buffer[..n]);
            Remaining -= n;
            return n;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.Length > Remaining) throw new IOException("more bytes written than the header announced");
            hash.AppendData(buffer);
            inner.Write(buffer);
            Remaining -= buffer.Length;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override bool CanRead => inner.CanRead;
        public override bool CanWrite => inner.CanWrite;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
