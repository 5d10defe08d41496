using System.Diagnostics;
using System.Text.Json.Nodes;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// The background half of a W&amp;B run: every <see cref="WandbTiming.TransmitInterval"/> it uploads new images
/// (CreateRunFiles + PUT), posts the spool's new history lines with the full summary and the <c>uploaded</c> list,
/// and posts an empty heartbeat when idle. Failures that may pass (5xx, 429, timeouts, refused connections) are
/// retried with doubling backoff, or after the server's Retry-After; the history offset only advances on success,
/// so a retry resends exactly the lines the server has not acknowledged. Training never waits on it except for the
/// bounded final flush (<see cref="WandbTiming.FinishTimeout"/>).
/// </summary>
internal sealed class WandbSender
{
    private const int MaxLinesPerPost = 2000;
    private const long MaxBytesPerPost = 4 << 20;   // the server takes ~10 MiB per request

    private readonly WandbApi _api;
    private readonly WandbSpool _spool;
    private readonly WandbTiming _timing;
    private readonly Func<CancellationToken, Task<WandbRunPath>> _upsert;
    private readonly Func<string?> _summary;
    private readonly Action<string> _notify;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _abort = new();
    private readonly Stopwatch _sinceLastPost = Stopwatch.StartNew();
    private WandbRunPath? _path;
    private long _sent;
    private string? _lastSummary;
    private readonly List<string> _putNotAnnounced = [];
    private int _exitCode;
    private volatile bool _finishing;   // written after _exitCode and _drainOnly, so the loop sees both
    private volatile bool _drainOnly;
    private Task? _loop;
    private string? _lastError;

    public WandbSender(WandbApi api, WandbSpool spool, WandbTiming timing, WandbRunPath? path,
                       Func<CancellationToken, Task<WandbRunPath>> upsert, Func<string?> summary, Action<string> notify)
    {
        _api = api;
        _spool = spool;
        _timing = timing;
        _path = path;
        _sent = path?.HistoryLineCount ?? 0;
        if (path is not null) StartOffset = _sent;
        _upsert = upsert;
        _summary = summary;
        _notify = notify;
    }

    /// <summary>Rows and files the server has not acknowledged yet.</summary>
    public (long Rows, int Files) Undelivered => (Math.Max(0, _spool.LineCount - _sent), _spool.PendingMedia().Count);

    /// <summary>Whether the server acknowledged <c>complete</c>.</summary>
    public bool Completed { get; private set; }

    /// <summary>The last failure, redacted; null after a success.</summary>
    public string? LastError => _lastError;

    public void Start() => _loop = Task.Run(LoopAsync);

    /// <summary>
    /// Flushes everything and posts <c>complete</c> with <paramref name="exitCode"/> (null: flush only, as
    /// <c>vae wandb sync</c> does for a run that never finished). Returns false when <paramref name="timeout"/> ran
    /// out first; what was not delivered stays in the spool.
    /// </summary>
    public bool Finish(int? exitCode, TimeSpan timeout)
    {
        _drainOnly = exitCode is null;
        _exitCode = exitCode ?? 0;
        _finishing = true;
        _wake.Release();
        _loop ??= Task.Run(LoopAsync);
        bool done = _loop.Wait(timeout);
        if (!done)
        {
            _abort.Cancel();
            try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        }
        return done && (Completed || _drainOnly) && Undelivered == (0, 0);
    }

    /// <summary>Stops at once (the process is going down without a clean finish); the spool keeps the rest.</summary>
    public void Abort()
    {
        _abort.Cancel();
        try { _loop?.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
    }

    /// <summary>The server's history line count when sending began, and the lines acknowledged since.</summary>
    public long StartOffset { get; private set; } = -1;
    public long Sent => _sent;

    private async Task LoopAsync()
    {
        int failures = 0;
        var cancel = _abort.Token;
        while (!cancel.IsCancellationRequested)
        {
            bool finishing = _finishing;
            TimeSpan wait = _timing.TransmitInterval;
            try
            {
                _path ??= await UpsertAsync(cancel);
                bool sentSomething = await SendPendingAsync(drainAll: finishing, cancel);
                if (finishing)
                {
                    if (!_drainOnly)
                    {
                        await _api.FileStreamAsync(_path, new JsonObject { ["complete"] = true, ["exitcode"] = _exitCode }.ToJsonString(), cancel);
                        Completed = true;
                    }
                    return;
                }
                if (!sentSomething && _sinceLastPost.Elapsed >= _timing.HeartbeatInterval)
                {
                    await _api.FileStreamAsync(_path, "{}", cancel);
                    _sinceLastPost.Restart();
                }
                if (failures > 0) _notify($"W&B: connection is back; {Undelivered.Rows} row(s) still to send.");
                failures = 0;
                _lastError = null;
            }
            catch (WandbTransientException e) when (!cancel.IsCancellationRequested)
            {
                failures++;
                _lastError = e.Message;
                wait = e.RetryAfter ?? Backoff(failures);
                if (failures == 1)
                    _notify($"W&B: {e.Message}; training goes on, rows are kept in {_spool.Directory} and retried.");
            }
            catch (Exception e) when (e is WandbAuthException or WandbProtocolException)
            {
                _lastError = e.Message;
                _notify($"W&B: {e.Message}; giving up on the server, everything stays in {_spool.Directory} (upload it later with vae wandb sync).");
                return;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)   // the spool's disk, a surprising response: the sender stops, training must not notice
            {
                _lastError = $"{e.GetType().Name}: {_api.Redact(e.Message)}";
                _notify($"W&B: the sender stopped ({_lastError}); what was logged is in {_spool.Directory}.");
                return;
            }

            // A finish request cuts a normal wait short, never a backoff the server asked for.
            if (failures == 0 && _finishing) continue;
            try
            {
                if (failures > 0) await Task.Delay(wait, cancel);
                else await _wake.WaitAsync(wait, cancel);
            }
            catch (OperationCanceledException) { return; }
        }
    }

    private TimeSpan Backoff(int failures)
    {
        double seconds = _timing.MinBackoff.TotalSeconds * Math.Pow(2, Math.Min(failures - 1, 16));
        return TimeSpan.FromSeconds(Math.Min(seconds, _timing.MaxBackoff.TotalSeconds));
    }

    private async Task<WandbRunPath> UpsertAsync(CancellationToken cancel)
    {
        var path = await _upsert(cancel);
        _sent = Math.Max(_sent, path.HistoryLineCount);
        if (StartOffset < 0) StartOffset = _sent;
        return path;
    }

    /// <summary>New images first (their history rows may already be on the server), then history batches.</summary>
    private async Task<bool> SendPendingAsync(bool drainAll, CancellationToken cancel)
    {
        bool sent = false;
        var pending = _spool.PendingMedia().Except(_putNotAnnounced).ToList();
        if (pending.Count > 0)
        {
            var targets = await _api.CreateRunFilesAsync(_path!, pending, cancel);
            foreach (var target in targets)
            {
                await _api.PutFileAsync(target, _spool.ReadMedia(target.Name), cancel);
                _putNotAnnounced.Add(target.Name);
            }
        }

        while (true)
        {
            var lines = _spool.ReadLines(_sent, MaxLinesPerPost, MaxBytesPerPost);
            string? summary = _summary();
            bool summaryChanged = summary is not null && summary != _lastSummary;
            if (lines.Count == 0 && !summaryChanged && _putNotAnnounced.Count == 0) return sent;

            var files = new JsonObject();
            if (lines.Count > 0)
                files["wandb-history.jsonl"] = new JsonObject
                {
                    ["offset"] = _sent, ["content"] = new JsonArray(lines.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
                };
            if (summary is not null)
                files["wandb-summary.json"] = new JsonObject { ["offset"] = 0, ["content"] = new JsonArray(JsonValue.Create(summary)) };
            var body = new JsonObject { ["files"] = files };
            var announced = _putNotAnnounced.ToList();
            if (announced.Count > 0)
                body["uploaded"] = new JsonArray(announced.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray());

            await _api.FileStreamAsync(_path!, body.ToJsonString(), cancel);
            _sinceLastPost.Restart();
            sent = true;
            _sent += lines.Count;
            _spool.MarkUploaded(announced);
            _putNotAnnounced.RemoveAll(announced.Contains);
            if (summary is not null) _lastSummary = summary;
            if (!drainAll && lines.Count < MaxLinesPerPost) return sent;
            if (_spool.ReadLines(_sent, 1, long.MaxValue).Count == 0 && _putNotAnnounced.Count == 0) return sent;
        }
    }
}
