using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// One W&amp;B run, written from the training thread: <see cref="Log"/> rows, <see cref="Image"/> values,
/// <see cref="SetSummary"/>, then <see cref="Finish"/>. Rows go to the spool (runs/NAME/wandb/) at once and to
/// the server from a background <see cref="WandbSender"/>; nothing here waits on the network except the bounded
/// start (<see cref="WandbTiming.RequestTimeout"/>) and final flush (<see cref="WandbTiming.FinishTimeout"/>).
/// </summary>
/// <remarks>
/// W&amp;B history is one line per step with a strictly increasing <c>_step</c>; values logged for the same step (the
/// last train step and its epoch's validation and images) are merged into one line, as the official client's
/// <c>commit=False</c> does.
/// </remarks>
public sealed partial class WandbRun : IDisposable
{
    private readonly WandbSettings _settings;
    private readonly WandbApi? _api;
    private readonly ConcurrentQueue<string> _messages = new();
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, object?> _summary = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, object?> _pending = new(StringComparer.Ordinal);
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private WandbSpool? _spool;
    private WandbSender? _sender;
    private string? _runDirectory;
    private long? _pendingStep;
    private long _lastStep = -1;
    private double _runtimeBefore;
    private string? _lastLine;
    private bool _warnedRewind;
    private bool _finished;
    private bool _unreachableAtConnect;   // then run creation is left to the sender instead of blocking the start again

    private WandbRun(WandbSettings settings, WandbApi? api)
    {
        _settings = settings;
        _api = api;
    }

    private readonly CancellationTokenSource _stop = new();

    /// <summary>The settings the run was connected with (the API key included; never print them whole).</summary>
    public WandbSettings Settings => _settings;

    /// <summary>
    /// Cancelled when the server asks the run to stop (<c>{"stopped": true}</c> in a file_stream reply: the Stop button on
    /// the run page). The official client then ends the script; VaeKit's training run should treat it like Ctrl-C:
    /// finish the step, save, and end (the W&amp;B run is still finished with the exit code).
    /// </summary>
    public CancellationToken StopRequested => _stop.Token;
    /// <summary>The run's page on W&amp;B once the server has created it; null before, and in offline mode until a sync.</summary>
    public string? Url => _spool?.Info.Url;
    /// <summary>The local spool (runs/NAME/wandb/) once <see cref="Start"/> has run; null before.</summary>
    public string? SpoolDirectory => _spool?.Directory;

    /// <summary>
    /// Checks the settings before any training work: null when tracking is disabled; a missing or refused API key is a
    /// <see cref="BadInputException"/> (exit 2). An unreachable server is not an error: the run is spooled and sent later.
    /// </summary>
    public static WandbRun? Connect(WandbSettings settings)
    {
        if (settings.Mode == WandbMode.Disabled) return null;
        if (settings.Mode == WandbMode.Offline) return new WandbRun(settings, null);
        if (string.IsNullOrEmpty(settings.ApiKey))
            throw new BadInputException(
                $"{VaeKit.Settings.Run.WandbTracking} needs an API key: set WANDB_API_KEY, or add 'machine {new Uri(settings.BaseUrl).Host} login user password KEY' to ~/.netrc " +
                "(or train offline with WANDB_MODE=offline and upload later with vae wandb sync).");
        var api = new WandbApi(settings.BaseUrl, settings.ApiKey, settings.Timing);
        var run = new WandbRun(settings, api);
        try
        {
            using var bound = new CancellationTokenSource(settings.Timing.StartTimeout);
            string? entity = Bounded(api.ViewerAsync(bound.Token), bound, settings.Timing.StartTimeout);
            if (settings.Entity is null && entity is not null)
                run._messages.Enqueue($"W&B: logged in to {settings.BaseUrl} as {entity}");
        }
        catch (WandbAuthException e)
        {
            api.Dispose();
            throw new BadInputException(
                $"W&B at {settings.BaseUrl} refused the API key ({e.Message}). Check WANDB_API_KEY or ~/.netrc, or train without {VaeKit.Settings.Run.WandbTracking}.");
        }
        catch (Exception e) when (e is WandbTransientException or WandbProtocolException)
        {
            run._unreachableAtConnect = true;
            run._messages.Enqueue($"W&B: cannot check the API key now ({e.Message}); training goes on and the run is sent when the server answers.");
        }
        return run;
    }

    /// <summary>Opens (or, on resume, reopens) runs/NAME/wandb/ and creates the run on the server.</summary>
    public void Start(string runDirectory, string runName, JsonObject config)
    {
        _runDirectory = runDirectory;
        _spool = WandbSpool.OpenOrCreate(Path.Combine(runDirectory, "wandb"), () => new WandbSpoolInfo
        {
            Id = NewRunId(), Project = _settings.Project, Entity = _settings.Entity,
            DisplayName = _settings.DisplayName ?? runName, Tags = _settings.Tags, Config = config,
        });
        var (commit, repo) = WandbEnvironment.Git(_settings.CodeDirectory ?? Environment.CurrentDirectory);
        _spool.Update(info => info with
        {
            Config = config,
            ExitCode = null,
            CompleteSent = false,
            Program = _settings.Program,
            Commit = commit,
            Repo = repo,
            Host = Environment.MachineName,
            // Tags given this time are sent once; without any, the run's tags (perhaps edited on the run page) stay.
            Tags = _settings.Tags.Count > 0 ? _settings.Tags : info.Tags,
            TagsSent = _settings.Tags.Count > 0 ? false : info.TagsSent,
        });
        ContinueFrom(_spool);

        if (_api is null)
        {
            _messages.Enqueue($"W&B offline: the run is kept in {_spool.Directory}; upload it with: vae wandb sync {runDirectory}");
            return;
        }
        WandbRunPath? path = null;
        try
        {
            if (!_unreachableAtConnect)
            {
                using var bound = new CancellationTokenSource(_settings.Timing.StartTimeout);
                path = Bounded(Upsert(_api, _spool, bound.Token), bound, _settings.Timing.StartTimeout);
                _messages.Enqueue($"W&B run: {_spool.Info.Url}");
            }
        }
        catch (WandbTransientException e)
        {
            _messages.Enqueue($"W&B: {e.Message}; training goes on, the run is kept in {_spool.Directory} and sent when the server answers.");
        }
        catch (Exception e) when (e is WandbAuthException or WandbProtocolException)
        {
            _messages.Enqueue($"W&B: {e.Message}; the run is kept in {_spool.Directory}; upload it later with: vae wandb sync {runDirectory}");
            return;
        }
        // Without a path the sender creates the run once the server answers, and the URL is announced then.
        _sender = new WandbSender(_api, _spool, _settings.Timing, path, async cancel =>
        {
            var created = await Upsert(_api, _spool, cancel);
            _messages.Enqueue($"W&B run: {_spool.Info.Url}");
            return created;
        }, SummaryLine, _messages.Enqueue, OnStopped);
        _sender.Start();
    }

    /// <summary>Values for training step <paramref name="step"/>; merged with others of the same step into one history line.</summary>
    public void Log(long step, IEnumerable<KeyValuePair<string, object?>> values)
    {
        if (_spool is null) throw new InvalidOperationException("Start the W&B run first.");
        if (_pendingStep is long current && step != current) FlushPending();
        if (step <= _lastStep)
        {
            if (!_warnedRewind)
                _messages.Enqueue($"W&B: steps up to {_lastStep} are already in this run's history; rows resume after it.");
            _warnedRewind = true;
            return;
        }
        _pendingStep = step;
        foreach (var (key, value) in values) _pending[key] = value;
    }

    /// <summary>
    /// A PNG as a W&amp;B image value for step <paramref name="step"/>: stored in the spool under
    /// media/images/KEY_STEP_SHA20.png (the official naming) and uploaded by the sender.
    /// </summary>
    public JsonObject Image(string key, string pngPath, long step)
    {
        if (_spool is null) throw new InvalidOperationException("Start the W&B run first.");
        byte[] bytes = File.ReadAllBytes(pngPath);
        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        string path = $"media/images/{SafeKey().Replace(key, "_")}_{step}_{sha[..20]}.png";
        _spool.AddMedia(path, bytes);
        var (width, height) = PngSize(bytes);
        return new JsonObject
        {
            ["_type"] = "image-file", ["path"] = path, ["sha256"] = sha, ["size"] = bytes.Length,
            ["format"] = "png", ["width"] = width, ["height"] = height,
        };
    }

    /// <summary>A summary value that is not simply the last logged one (best validation loss, parameter count).</summary>
    public void SetSummary(string key, object? value)
    {
        lock (_gate) _summary[key] = value;
    }

    /// <summary>Text with the API key (if any) removed.</summary>
    public string Redact(string text) => Redactor.Redact(text, _settings.ApiKey);

    /// <summary>Messages for the user from the run and its sender (any thread); the caller prints them.</summary>
    public IEnumerable<string> DrainMessages()
    {
        while (_messages.TryDequeue(out var message)) yield return message;
    }

    /// <summary>
    /// Ends the run: the last row, the summary, then <c>complete</c> with <paramref name="exitCode"/> (0 = finished,
    /// anything else = failed). Waits at most <see cref="WandbTiming.FinishTimeout"/>; true when everything arrived.
    /// </summary>
    public bool Finish(int exitCode)
    {
        if (_spool is null || _finished) return false;
        _finished = true;
        if (_pendingStep is not null) FlushPending();
        if (SummaryLine() is string summary) _spool.WriteSummary(summary);
        _spool.Update(info => info with { ExitCode = exitCode });

        if (_sender is null)
        {
            _messages.Enqueue(_api is null
                ? $"W&B offline run kept in {_spool.Directory}; upload it with: vae wandb sync {_runDirectory}"
                : $"W&B: nothing was sent; upload the run with: vae wandb sync {_runDirectory}");
            return false;
        }
        bool delivered = _sender.Finish(exitCode, _settings.Timing.FinishTimeout);
        if (!delivered && _sender.Completed && _sender.Undelivered.Rows == 0)
        {
            _spool.Update(info => info with { CompleteSent = true });
            _messages.Enqueue($"W&B run finished (exit code {exitCode}): {_spool.Info.Url}; {_sender.Undelivered.Files} image(s) could not be uploaded " +
                              $"and are kept in {_spool.Directory}. Upload them with: vae wandb sync {_runDirectory}");
        }
        else if (delivered)
        {
            _spool.Update(info => info with { CompleteSent = true });
            _messages.Enqueue($"W&B run finished (exit code {exitCode}): {_spool.Info.Url}");
        }
        else
        {
            var (rows, files) = _sender.Undelivered;
            _messages.Enqueue(
                $"W&B: {rows} row(s) and {files} image(s) not delivered within {_settings.Timing.FinishTimeout.TotalSeconds:0} s" +
                $"{(_sender.LastError is string error ? $" ({error})" : "")}; they are kept in {_spool.Directory}. Upload them with: vae wandb sync {_runDirectory}");
        }
        return delivered;
    }

    /// <summary>The server asked the run to stop (the Stop button on the run page): said once, then <see cref="StopRequested"/>.</summary>
    private void OnStopped()
    {
        if (_stop.IsCancellationRequested) return;
        _messages.Enqueue("W&B: the run was stopped from the run page; training finishes the current step, saves and ends.");
        _stop.Cancel();
    }

    private void FlushPending()
    {
        long step = _pendingStep!.Value;
        double runtime = Math.Round(_runtimeBefore + _clock.Elapsed.TotalSeconds, 3);
        double timestamp = Math.Round(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0, 3);
        var row = new List<KeyValuePair<string, object?>> { new("_step", step), new("_runtime", runtime), new("_timestamp", timestamp) };
        row.AddRange(_pending);
        string line = WandbJson.Line(row);
        int bytes = System.Text.Encoding.UTF8.GetByteCount(line);
        if (bytes > _settings.MaxLineBytes)
        {
            var dropped = Trim(row);
            line = WandbJson.Line(row);
            _messages.Enqueue($"W&B: the row for step {step} is {bytes} bytes, over the server's limit of {_settings.MaxLineBytes}; " +
                              $"left out {string.Join(", ", dropped)} (the rest of the row is sent).");
        }
        _spool!.AppendLine(line);
        lock (_gate)
        {
            foreach (var (key, value) in row) _summary[key] = value;
            _summary["_wandb"] = new JsonObject { ["runtime"] = (long)runtime };
        }
        _lastLine = line;
        _lastStep = step;
        _pending.Clear();
        _pendingStep = null;
    }

    /// <summary>
    /// Makes an oversized row fit <see cref="WandbSettings.MaxLineBytes"/> by leaving out its largest values (never
    /// <c>_step</c>, <c>_runtime</c>, <c>_timestamp</c>). The official client drops the whole row; trimming keeps the
    /// step and its other metrics. Returns the keys left out.
    /// </summary>
    private List<string> Trim(List<KeyValuePair<string, object?>> row)
    {
        var dropped = new List<string>();
        var bySize = row.Where(kv => !kv.Key.StartsWith('_'))
                        .Select(kv => (kv.Key, Size: System.Text.Encoding.UTF8.GetByteCount(WandbJson.Line([kv]))))
                        .OrderByDescending(x => x.Size).ToList();
        foreach (var (key, _) in bySize)
        {
            if (System.Text.Encoding.UTF8.GetByteCount(WandbJson.Line(row)) <= _settings.MaxLineBytes) break;
            row.RemoveAll(kv => kv.Key == key);
            dropped.Add(key);
        }
        return dropped;
    }

    /// <summary>W&amp;B's default summary (the last value of every key) plus the values set with <see cref="SetSummary"/>.</summary>
    private string? SummaryLine()
    {
        lock (_gate) return _summary.Count == 0 ? null : WandbJson.Line(_summary.ToList());
    }

    /// <summary>On resume: _step and _runtime continue after the spool's last line.</summary>
    private void ContinueFrom(WandbSpool spool)
    {
        long count = spool.LineCount;
        if (count == 0) return;
        _lastLine = spool.ReadLines(count - 1, 1, long.MaxValue)[0];
        var match = StepAndRuntime().Match(_lastLine);
        if (match.Success)
        {
            _lastStep = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            _runtimeBefore = double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        }
        if (spool.Summary is string summary)
        {
            try
            {
                if (JsonNode.Parse(summary) is JsonObject previous)
                    foreach (var (key, value) in previous) _summary[key] = value?.DeepClone();
            }
            catch (JsonException) { }   // a NaN in it: the summary is rebuilt from the new rows
        }
    }

    /// <summary>Waits for a start-up call at most <paramref name="limit"/>; a call cut off there counts as a passing failure.</summary>
    private static T Bounded<T>(Task<T> call, CancellationTokenSource bound, TimeSpan limit)
    {
        try { return call.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new WandbTransientException($"no answer within {limit.TotalSeconds:0.#} s");
        }
    }

    /// <summary>
    /// UpsertBucket with the spool's ID, config (plus the <c>_wandb</c> block) and metadata; tags only until the server
    /// has them. The server's entity, project and the run URL go back into run.json.
    /// </summary>
    internal static async Task<WandbRunPath> Upsert(WandbApi api, WandbSpool spool, CancellationToken cancel)
    {
        var info = spool.Info;
        var config = (JsonObject)info.Config.DeepClone();
        config["_wandb"] = WandbEnvironment.Block(info);
        var metadata = new WandbRunMetadata
        {
            DisplayName = info.DisplayName, Tags = info.TagsSent || info.Tags.Count == 0 ? null : info.Tags,
            Host = info.Host ?? Environment.MachineName, Program = info.Program, Commit = info.Commit, Repo = info.Repo,
        };
        var path = await api.UpsertBucketAsync(info.Id, info.Project, info.Entity, WandbJson.ConfigString(config), metadata, cancel);
        spool.Update(i => i with { Entity = path.Entity, Project = path.Project, Url = api.RunUrl(path), TagsSent = i.TagsSent || metadata.Tags is not null });
        return path;
    }

    /// <summary>8 characters of [a-z0-9], like the official client's run IDs.</summary>
    private static string NewRunId()
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        return string.Create(8, 0, (span, _) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        });
    }

    private static (int Width, int Height) PngSize(byte[] png) =>
        png.Length >= 24 ? (System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)),
                            System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)))
                         : (0, 0);

    [GeneratedRegex("[^A-Za-z0-9_-]")]
    private static partial Regex SafeKey();

    [GeneratedRegex("""^\{"_step":(\d+),"_runtime":([0-9.eE+-]+)""")]
    private static partial Regex StepAndRuntime();

    /// <inheritdoc/>
    public void Dispose()
    {
        _sender?.Abort();
        _spool?.Dispose();
        _api?.Dispose();
        // _stop is not disposed: a caller may still hold StopRequested, and an undisposed source without timers holds nothing.
    }
}
