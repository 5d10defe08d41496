using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace VaeKit.Data;

/// <summary>
/// The image files of a folder or zip, listed once in a deterministic order (ordinal by relative path), with a content
/// fingerprint and per-thread readers. Nothing here writes to the data location.
/// </summary>
internal abstract class ImageFileSource
{
    /// <summary>File extensions taken as images (compared case-insensitively).</summary>
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>([".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"], StringComparer.OrdinalIgnoreCase);

    /// <summary>Relative names ('/'-separated), sorted ordinally; index i is image i.</summary>
    public abstract IReadOnlyList<string> Names { get; }

    /// <summary>SHA-256 over the listing's content (names, sizes and content hashes or CRCs), not over the path of the data set or file times.</summary>
    public abstract byte[] Fingerprint { get; }

    /// <summary>A reader for one worker thread; readers are independent, so several may run in parallel.</summary>
    public abstract IImageFileReader OpenReader();

    /// <summary>True for an image name that is not macOS resource-fork litter ("._x.jpg", "__MACOSX/…").</summary>
    public static bool IsImageName(string relativePath)
    {
        if (!Extensions.Contains(Path.GetExtension(relativePath))) return false;
        if (Path.GetFileName(relativePath).StartsWith("._", StringComparison.Ordinal)) return false;
        return !relativePath.StartsWith("__MACOSX/", StringComparison.Ordinal) && !relativePath.Contains("/__MACOSX/", StringComparison.Ordinal);
    }

    /// <summary>Appends a name, a 0 separator and 64-bit numbers to an incremental hash.</summary>
    protected static void Append(IncrementalHash hash, string name, params ReadOnlySpan<long> numbers)
    {
        hash.AppendData(Encoding.UTF8.GetBytes(name));
        Span<byte> buffer = stackalloc byte[9];
        buffer[0] = 0;
        hash.AppendData(buffer[..1]);
        foreach (long n in numbers)
        {
            BinaryPrimitives.WriteInt64LittleEndian(buffer, n);
            hash.AppendData(buffer[..8]);
        }
    }
}

/// <summary>Reads the bytes of image i. Not thread-safe: one per worker.</summary>
internal interface IImageFileReader : IDisposable
{
    /// <summary>Reads image <paramref name="index"/> into <paramref name="buffer"/> (grown when needed) and returns its length.</summary>
    /// <exception cref="IOException">The file vanished or could not be read (the image is skipped).</exception>
    /// <exception cref="InvalidDataException">The zip entry is damaged or too large (the image is skipped).</exception>
    int Read(int index, ref byte[] buffer);
}

/// <summary>All image files under a directory, recursively; hidden files and folders (dot-names) are left out.</summary>
internal sealed class FolderSource : ImageFileSource
{
    private readonly string _root;
    private readonly string[] _names;

    private FolderSource(string root, string[] names, byte[] fingerprint)
    {
        _root = root;
        _names = names;
        Fingerprint = fingerprint;
    }

    public override IReadOnlyList<string> Names => _names;
    public override byte[] Fingerprint { get; }

    /// <param name="cacheRoot">Where <see cref="FolderContentIndex"/> remembers file hashes between starts; null = hash every file.</param>
    /// <exception cref="BadInputException">The folder does not exist or holds no image files.</exception>
    public static FolderSource Scan(string root, string? cacheRoot, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(root))
            throw new BadInputException(File.Exists(root)
                ? $"{root} is a file, not a folder: pass a folder of images, or a .zip file named *.zip."
                : $"{root} does not exist: pass an existing folder of images.");

        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            IgnoreInaccessible = true,                                   // an unreadable subfolder is not the user's data
            AttributesToSkip = FileAttributes.Hidden | FileAttributes.System,   // on Unix: dot-names (.git, ._x.jpg)
        };
        var files = new List<FolderContentIndex.FileStamp>();
        foreach (var file in new DirectoryInfo(root).EnumerateFiles("*", options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            string name = Path.GetRelativePath(root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (IsImageName(name)) files.Add(new(name, file.Length, file.LastWriteTimeUtc.Ticks));
        }
        if (files.Count == 0)
            throw new BadInputException($"{root} contains no image files (.jpg, .jpeg, .png, .bmp, .gif, .webp): pass a folder that does.");
        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));   // directory order varies by file system

        // By content, not file times: touching or copying a file must not make resume refuse the data.
        var fingerprint = FolderContentIndex.Fingerprint(root, files, cacheRoot, cancellationToken);
        return new FolderSource(root, files.ConvertAll(f => f.Name).ToArray(), fingerprint);
    }

    public override IImageFileReader OpenReader() => new Reader(this);

    private sealed class Reader(FolderSource source) : IImageFileReader
    {
        public int Read(int index, ref byte[] buffer)
        {
            string path = Path.Join(source._root, source._names[index]);
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            long length = file.Length;
            if (length > Array.MaxLength) throw new InvalidDataException($"too large ({length} bytes)");
            if (buffer.Length < length) buffer = new byte[Math.Min(Array.MaxLength, Math.Max(length, 2L * buffer.Length))];
            return file.ReadAtLeast(buffer.AsSpan(0, (int)length), (int)length, throwOnEndOfStream: false);
        }

        public void Dispose() { }
    }
}

/// <summary>The image entries of a zip archive, read in place with System.IO.Compression (nothing is extracted).</summary>
internal sealed class ZipSource : ImageFileSource
{
    /// <summary>Entries bigger than this (uncompressed) are skipped instead of inflated.</summary>
    private const long MaxEntryBytes = 256L * 1024 * 1024;

    private readonly string _path;
    private readonly string[] _names;
    private readonly int[] _entryIndex;   // position in ZipArchive.Entries (central-directory order) of image i

    private ZipSource(string path, string[] names, int[] entryIndex, byte[] fingerprint)
    {
        _path = path;
        _names = names;
        _entryIndex = entryIndex;
        Fingerprint = fingerprint;
    }

    public override IReadOnlyList<string> Names => _names;
    public override byte[] Fingerprint { get; }

    /// <exception cref="BadInputException">The file does not exist, is not a readable zip, or has no image entries.</exception>
    public static ZipSource Scan(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
            throw new BadInputException(Directory.Exists(path)
                ? $"{path} is a folder, not a zip file: pass it as a folder instead."
                : $"{path} does not exist: pass an existing .zip file of images.");
        var info = new FileInfo(path);
        var entries = new List<(string Name, int Index, long Length, uint Crc)>();
        try
        {
            using var archive = ZipFile.OpenRead(path);
            for (int i = 0; i < archive.Entries.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var e = archive.Entries[i];
                if (e.Name.Length > 0 && IsImageName(e.FullName)) entries.Add((e.FullName, i, e.Length, e.Crc32));
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path} could not be read as a zip archive ({e.Message}): check the download or pass a folder instead.", e);
        }
        if (entries.Count == 0)
            throw new BadInputException($"{path} contains no image files (.jpg, .jpeg, .png, .bmp, .gif, .webp): pass a zip that does.");
        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // Entry names, sizes and CRC-32s identify the content; the archive's own date and path do not, so a copied
        // or moved archive keeps its cache and its runs stay resumable.
        Append(hash, "zip", 0, 0);
        foreach (var e in entries) Append(hash, e.Name, e.Length, e.Crc);
        return new ZipSource(path, entries.ConvertAll(e => e.Name).ToArray(), entries.ConvertAll(e => e.Index).ToArray(), hash.GetHashAndReset());
    }

    public override IImageFileReader OpenReader() => new Reader(this);

    /// <summary>Owns its FileStream and ZipArchive: ZipArchive is not thread-safe, so workers never share one.</summary>
    private sealed class Reader : IImageFileReader
    {
        private readonly ZipSource _source;
        private readonly ZipArchive _archive;

        public Reader(ZipSource source)
        {
            _source = source;
            var file = new FileStream(source._path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
            _archive = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: false);
        }

        public int Read(int index, ref byte[] buffer)
        {
            var entry = _archive.Entries[_source._entryIndex[index]];
            long length = entry.Length;
            if (length > MaxEntryBytes) throw new InvalidDataException($"too large ({length} bytes)");
            if (buffer.Length < length) buffer = new byte[Math.Min(Array.MaxLength, Math.Max(length, 2L * buffer.Length))];
            using var stream = entry.Open();
            int read = stream.ReadAtLeast(buffer.AsSpan(0, (int)length), (int)length, throwOnEndOfStream: false);
            if (read < length) throw new InvalidDataException($"zip entry holds {read} of {length} bytes");
            return read;
        }

        public void Dispose() => _archive.Dispose();
    }
}
