using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace VaeKit.Data;

/// <summary>
/// The content fingerprint of a folder's image files: SHA-256 over every file's relative name, size and SHA-256 of
/// its bytes. File times are not part of it, so <c>touch</c>, a copy that resets times, or a checkout does not change
/// it; any changed byte does.
/// </summary>
/// <remarks>
/// Hashing 63k files costs a read of each; to keep a second start cheap, the hashes are remembered in an index file
/// in the cache directory (<c>&lt;cache&gt;/folders/&lt;hash of the folder's path&gt;.vkfi</c>), keyed by name, size
/// and modification time. A file whose size and time match its entry is not read again; any other file is (a touched
/// file is re-hashed, finds the same hash, and the fingerprint stays). The index is only an accelerator: a missing,
/// damaged or foreign index means hashing everything again. Without a cache directory nothing is remembered.
/// Layout: "VKFI", int32 version, int32 count, then per file: int32 UTF-8 name length, name, int64 size, int64 time
/// (UTC ticks), 32-byte SHA-256 (little-endian integers).
/// </remarks>
internal static class FolderContentIndex
{
    private const int FormatVersion = 1;
    private static ReadOnlySpan<byte> Magic => "VKFI"u8;

    /// <summary>One image file as listed by the scan.</summary>
    public readonly record struct FileStamp(string Name, long Length, long Ticks);

    /// <summary>Hashes for <paramref name="files"/> (sorted by name) under <paramref name="root"/>, reading only the files the index does not vouch for.</summary>
    /// <param name="cacheRoot">The decode cache's root, or null to neither read nor write an index.</param>
    public static byte[] Fingerprint(string root, IReadOnlyList<FileStamp> files, string? cacheRoot, CancellationToken cancellationToken)
    {
        string? indexPath = cacheRoot is null ? null : PathFor(cacheRoot, root);
        var known = indexPath is null ? [] : TryRead(indexPath);

        var hashes = new byte[files.Count][];
        var stale = new List<int>();
        for (int i = 0; i < files.Count; i++)
        {
            var f = files[i];
            if (known.TryGetValue(f.Name, out var entry) && entry.Length == f.Length && entry.Ticks == f.Ticks) hashes[i] = entry.Hash;
            else stale.Add(i);
        }

        var unreadable = new bool[files.Count];
        if (stale.Count > 0)
        {
            var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount };
            Parallel.ForEach(stale, parallel, i =>
            {
                try
                {
                    using var stream = new FileStream(Path.Join(root, files[i].Name), FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
                    hashes[i] = SHA256.HashData(stream);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The decoder will skip it too; not remembered, so it is hashed again once it can be read.
                    hashes[i] = new byte[SHA256.HashSizeInBytes];
                    unreadable[i] = true;
                }
            });
            if (indexPath is not null) TryWrite(indexPath, files, hashes, unreadable);
        }

        using var fingerprint = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        fingerprint.AppendData("vaekit-folder-content/1\0"u8);
        Span<byte> length = stackalloc byte[8];
        for (int i = 0; i < files.Count; i++)
        {
            fingerprint.AppendData(Encoding.UTF8.GetBytes(files[i].Name));
            BinaryPrimitives.WriteInt64LittleEndian(length, files[i].Length);
            fingerprint.AppendData([0]);
            fingerprint.AppendData(length);
            fingerprint.AppendData(hashes[i]);
        }
        return fingerprint.GetHashAndReset();
    }

    /// <summary>The index file of a folder: one per absolute folder path.</summary>
    public static string PathFor(string cacheRoot, string root)
    {
        var key = SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(root)));
        return Path.Join(cacheRoot, "folders", Convert.ToHexStringLower(key, 0, 16) + ".vkfi");
    }

    private readonly record struct Entry(long Length, long Ticks, byte[] Hash);

    private static Dictionary<string, Entry> TryRead(string path)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        try
        {
            if (!File.Exists(path)) return entries;
            using var reader = new BinaryReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan));
            if (!reader.ReadBytes(4).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != FormatVersion) return entries;
            int count = reader.ReadInt32();
            if (count < 0) return entries;
            for (int i = 0; i < count; i++)
            {
                int nameLength = reader.ReadInt32();
                if (nameLength is < 0 or > 1 << 16) return [];
                string name = Encoding.UTF8.GetString(reader.ReadBytes(nameLength));
                long length = reader.ReadInt64(), ticks = reader.ReadInt64();
                byte[] hash = reader.ReadBytes(SHA256.HashSizeInBytes);
                if (hash.Length != SHA256.HashSizeInBytes) return [];
                entries[name] = new Entry(length, ticks, hash);
            }
            return entries;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DecoderFallbackException)
        {
            return [];   // a damaged index costs a re-hash, nothing else
        }
    }

    /// <summary>Writes the index atomically (temp file + rename); failing to write it is not an error.</summary>
    private static void TryWrite(string path, IReadOnlyList<FileStamp> files, byte[][] hashes, bool[] unreadable)
    {
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var writer = new BinaryWriter(new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16)))
            {
                writer.Write(Magic);
                writer.Write(FormatVersion);
                writer.Write(files.Count - unreadable.Count(u => u));
                for (int i = 0; i < files.Count; i++)
                {
                    if (unreadable[i]) continue;
                    byte[] name = Encoding.UTF8.GetBytes(files[i].Name);
                    writer.Write(name.Length);
                    writer.Write(name);
                    writer.Write(files[i].Length);
                    writer.Write(files[i].Ticks);
                    writer.Write(hashes[i]);
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { /* harmless */ }
        }
    }
}
