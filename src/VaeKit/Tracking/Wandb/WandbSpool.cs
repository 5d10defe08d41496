using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VaeKit.Tracking.Wandb;

/// <summary>What runs/NAME/wandb/run.json records about the W&amp;B run (never the API key).</summary>
internal sealed record WandbSpoolInfo
{
    /// <summary>The W&amp;B run ID (URL slug): 8 characters of [a-z0-9], as the official client makes them.</summary>
    public required string Id { get; init; }
    public required string Project { get; init; }
    /// <summary>null until the server named the key's default entity.</summary>
    public string? Entity { get; init; }
    public required string DisplayName { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    /// <summary>
    /// <see cref="Tags"/> reached the server; later upserts send <c>tags: null</c>, which keeps tags added on the run page
    /// (a list would replace them).
    /// </summary>
    public bool TagsSent { get; init; }
    /// <summary>The UpsertBucket <c>program</c>, <c>commit</c>, <c>repo</c> (remote URL without credentials) and <c>host</c>.</summary>
    public string? Program { get; init; }
    public string? Commit { get; init; }
    public string? Repo { get; init; }
    public string? Host { get; init; }
    /// <summary>
    /// History lines the server acknowledged (file_stream answered 200). Sending resumes at the larger of this and the
    /// server's <c>historyLineCount</c>, which on the hosted service lags seconds behind writes.
    /// </summary>
    public long Acknowledged { get; init; }
    /// <summary>The run's config.json as it was sent (or will be sent) with UpsertBucket.</summary>
    public JsonObject Config { get; init; } = new();
    public string? Url { get; init; }
    /// <summary>Set when training ended: 0 completed, non-zero crashed / diverged / interrupted.</summary>
    public int? ExitCode { get; init; }
    /// <summary>The server acknowledged <c>complete</c> with <see cref="ExitCode"/>.</summary>
    public bool CompleteSent { get; init; }
}

/// <summary>
/// runs/NAME/wandb/: the local copy of everything a W&amp;B run sends, written before it is sent, so that nothing is
/// lost while the server is away and <c>vae wandb sync</c> can upload it later.
/// <list type="bullet">
/// <item><c>run.json</c>: <see cref="WandbSpoolInfo"/>;</item>
/// <item><c>history.jsonl</c>: the history lines exactly as posted; line i is file_stream offset i;</item>
/// <item><c>summary.json</c>: the latest summary line;</item>
/// <item><c>media/images/*.png</c>: every image a history line refers to, under the path it has on the server;</item>
/// <item><c>uploaded.txt</c>: media paths the server has confirmed (PUT done and announced in <c>uploaded</c>).</item>
/// </list>
/// The history file is the sender's queue: the training thread appends, the sender reads from its offset, so memory
/// stays bounded (one file position per line) however long the server is away.
/// </summary>
internal sealed class WandbSpool : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<long> _lineStarts = [];   // byte offset of each line in history.jsonl
    private readonly List<string> _media = [];
    private readonly HashSet<string> _uploaded = [];
    private readonly FileStream _history;
    private WandbSpoolInfo _info;

    private WandbSpool(string directory, WandbSpoolInfo info)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "media", "images"));
        _info = info;
        _history = new FileStream(HistoryPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        IndexHistory();
        if (File.Exists(UploadedPath))
            foreach (var line in File.ReadAllLines(UploadedPath))
                if (line.Length > 0) _uploaded.Add(line);
        string media = Path.Combine(directory, "media");
        foreach (var file in System.IO.Directory.GetFiles(media, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            _media.Add(Path.GetRelativePath(directory, file).Replace('\\', '/'));
        WriteInfo();
    }

    public string Directory { get; }
    private string HistoryPath => Path.Combine(Directory, "history.jsonl");
    private string UploadedPath => Path.Combine(Directory, "uploaded.txt");
    private string InfoPath => Path.Combine(Directory, "run.json");
    private string SummaryPath => Path.Combine(Directory, "summary.json");

    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, "run.json"));

    /// <summary>Opens runs/NAME/wandb/, or creates it with <paramref name="create"/>'s info.</summary>
    public static WandbSpool OpenOrCreate(string directory, Func<WandbSpoolInfo> create) =>
        new(directory, Exists(directory) ? ReadInfo(directory) : create());

    public static WandbSpool Open(string directory) =>
        Exists(directory) ? new(directory, ReadInfo(directory))
                          : throw new BadInputException($"{directory} holds no W&B run (no run.json); train with {Settings.Run.WandbTracking} or WANDB_MODE=offline first.");

    private static WandbSpoolInfo ReadInfo(string directory)
    {
        try
        {
            return JsonSerializer.Deserialize<WandbSpoolInfo>(File.ReadAllText(Path.Combine(directory, "run.json")), Json.Indented)
                   ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{Path.Combine(directory, "run.json")} is damaged ({e.Message}).");
        }
    }

    public WandbSpoolInfo Info { get { lock (_gate) return _info; } }

    public void Update(Func<WandbSpoolInfo, WandbSpoolInfo> change)
    {
        lock (_gate)
        {
            _info = change(_info);
            WriteInfo();
        }
    }

    private void WriteInfo() => Json.WriteAllTextAtomic(InfoPath, JsonSerializer.Serialize(_info, Json.Indented) + "\n");

    public long LineCount { get { lock (_gate) return _lineStarts.Count; } }

    /// <summary>Appends one history line (training thread); it is on disk before this returns.</summary>
    public void AppendLine(string line)
    {
        if (line.Contains('\n')) throw new ArgumentException("A history line is one line.", nameof(line));
        byte[] bytes = Encoding.UTF8.GetBytes(line + "\n");
        lock (_gate)
        {
            long start = _history.Length;
            _history.Seek(start, SeekOrigin.Begin);
            _history.Write(bytes);
            _history.Flush();
            _lineStarts.Add(start);
        }
    }

    /// <summary>Lines [<paramref name="from"/>, …) up to a count and byte budget (at least one line when any is left).</summary>
    public IReadOnlyList<string> ReadLines(long from, int maxLines, long maxBytes)
    {
        var lines = new List<string>();
        lock (_gate)
        {
            long end = Math.Min(_lineStarts.Count, from + maxLines);
            if (from >= end) return lines;
            long startByte = _lineStarts[(int)from];
            long endByte = end < _lineStarts.Count ? _lineStarts[(int)end] : _history.Length;
            // Whole lines within the byte budget.
            while (end - from > 1 && endByte - startByte > maxBytes)
                endByte = _lineStarts[(int)--end];
            var buffer = new byte[endByte - startByte];
            _history.Seek(startByte, SeekOrigin.Begin);
            _history.ReadExactly(buffer);
            foreach (var line in Encoding.UTF8.GetString(buffer).Split('\n'))
                if (line.Length > 0) lines.Add(line);
        }
        return lines;
    }

    public string? Summary => File.Exists(SummaryPath) ? File.ReadAllText(SummaryPath).TrimEnd('\n') : null;

    public void WriteSummary(string line) => Json.WriteAllTextAtomic(SummaryPath, line + "\n");

    /// <summary>Stores an image under its server path (e.g. media/images/samples_40_0123abcd….png).</summary>
    public void AddMedia(string path, byte[] content)
    {
        string full = Path.Combine(Directory, path);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        AtomicFile.Write(full, s => s.Write(content));
        lock (_gate)
            if (!_media.Contains(path)) _media.Add(path);
    }

    public byte[] ReadMedia(string path) => File.ReadAllBytes(Path.Combine(Directory, path));

    public IReadOnlyList<string> PendingMedia()
    {
        lock (_gate) return _media.Where(m => !_uploaded.Contains(m)).ToList();
    }

    public void MarkUploaded(IEnumerable<string> paths)
    {
        lock (_gate)
        {
            var fresh = paths.Where(_uploaded.Add).ToList();
            if (fresh.Count > 0) File.AppendAllLines(UploadedPath, fresh);
        }
    }

    /// <summary>Builds the line index; a torn last line (a crash mid-write) is cut off.</summary>
    private void IndexHistory()
    {
        _history.Seek(0, SeekOrigin.Begin);
        long position = 0, lineStart = 0;
        var buffer = new byte[1 << 16];
        int read;
        while ((read = _history.Read(buffer)) > 0)
        {
            for (int i = 0; i < read; i++)
                if (buffer[i] == (byte)'\n')
                {
                    _lineStarts.Add(lineStart);
                    lineStart = position + i + 1;
                }
            position += read;
        }
        if (lineStart < position) _history.SetLength(lineStart);
    }

    public void Dispose() => _history.Dispose();
}
