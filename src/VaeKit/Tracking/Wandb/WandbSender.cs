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
/// <remarks>
/// As in the official client (docs/wandb-contract.md): a refused upload (CreateRunFiles or storage 4xx) is reported and
/// skipped, never stopping the metrics (the file stays in the spool for <c>vae wandb sync</c>); a reply with
/// <c>"stopped": true</c> is passed on once; sending starts at the larger of the server's lagging
/// <c>historyLineCount</c> and the lines the spool knows were acknowledged. Unlike the official client, a 413 halves
/// the batch and tries again instead of ending the stream.
/// </remarks>
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
    private readonly Action _stopped;
    private readonly HashSet<string> _failedUploads = [];   // refused for good in this session; sync tries again
    private int _batchLines = MaxLinesPerPost;
    private long _batchBytes = MaxBytesPerPost;
    private bool _uploadTroubleSaid;
    private int _uploadFailures;
    private DateTime _uploadNotBefore = DateTime.MinValue;   // a transient upload failure waits its backoff (or Retry-After)
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
                       Func<CancellationToken, Task<WandbRunPath>> upsert, Func<string?> summary, Action<string> notify, Action? stopped = null)
    {
        _api = api;
        _spool = spool;
        _timing = timing;
        _upsert = upsert;
        _summary = summary;
        _notify = notify;
        _stopped = stopped ?? (() => { });
        _path = path;
        if (path is not null) StartOffset = _sent = ResumeOffset(path);
    }

    /// <summary>
    /// Where sending starts: the server's <c>historyLineCount</c> may trail what it acknowledged by seconds (hosted
    /// service), so the larger of it and the spool's acknowledged count; 0 for a run the upsert just created; never past
    /// the spool's end (line i of the spool is offset i on the server, so nothing is re-sent or skipped).
    /// </summary>
    private long ResumeOffset(WandbRunPath path)
    {
        long acknowledged = path.Inserted ? 0 : _spool.Info.Acknowledged;
        long start = Math.Max(path.HistoryLineCount, acknowledged), inSpool = _spool.LineCount;
        if (start > inSpool)
            _notify($"W&B: the server reports {start} history row(s) for this run, its spool holds {inSpool}; sending continues from the spool's end.");
        return Math.Min(start, inSpool);
    }

    /// <summary>Rows and files the server has not acknowledged yet.</summary>
    public (long Rows, int Files) Undelivered => (Math.Max(0, _spool.LineCount - _sent), _spool.PendingMedia().Count);

    /// <summary>Files refused for good in this session (reported when it happened); they stay in the spool for a sync.</summary>
    public int RefusedFiles => _failedUploads.Count;

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
                        await PostAsync(new JsonObject { ["complete"] = true, ["exitcode"] = _exitCode }.ToJsonString(), cancel);
                        Completed = true;
                    }
                    return;
                }
                if (!sentSomething && _sinceLastPost.Elapsed >= _timing.HeartbeatInterval)
                {
                    await PostAsync("{}", cancel);
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
        _sent = Math.Max(_sent, ResumeOffset(path));
        if (StartOffset < 0) StartOffset = _sent;
        return path;
    }

    private async Task<JsonNode?> PostAsync(string body, CancellationToken cancel)
    {
        var reply = await _api.FileStreamAsync(_path!, body, cancel);
        if (reply?["stopped"] is JsonValue stopped && stopped.TryGetValue(out bool yes) && yes) _stopped();
        return reply;
    }

    /// <summary>
    /// CreateRunFiles + PUT for <paramref name="pending"/>. A refusal is reported and the file skipped for this session;
    /// a transient failure leaves the file for the next round and is returned (the finish retries it).
    /// </summary>
    private async Task<WandbTransientException?> UploadAsync(List<string> pending, CancellationToken cancel)
    {
        IReadOnlyList<WandbUploadTarget> targets;
        try
        {
            targets = await _api.CreateRunFilesAsync(_path!, pending, cancel);
        }
        catch (WandbUploadException e)
        {
            Skip(pending, e.Message);
            return null;
        }
        catch (WandbTransientException e)
        {
            Trouble(e.Message);
            return e;
        }
        Skip(pending.Except(targets.Select(t => t.Name)).ToList(), "CreateRunFiles gave no upload URL");
        foreach (var target in targets)
        {
            try
            {
                await _api.PutFileAsync(target, _spool.ReadMedia(target.Name), cancel);
                _putNotAnnounced.Add(target.Name);
            }
            catch (WandbUploadException e)
            {
                Skip([target.Name], e.Message);
            }
            catch (WandbTransientException e)
            {
                Trouble(e.Message);
                return e;
            }
        }
        return null;
    }

    private void Skip(List<string> files, string why)
    {
        if (files.Count == 0) return;
        _failedUploads.UnionWith(files);
        _lastError = why;
        _notify($"W&B: upload of {string.Join(", ", files)} failed ({why}); skipped, metrics go on. The file stays in {_spool.Directory}; vae wandb sync uploads it.");
    }

    private void Trouble(string why)
    {
        _lastError = why;
        if (!_uploadTroubleSaid) _notify($"W&B: an image upload failed for now ({why}); it is retried.");
        _uploadTroubleSaid = true;
    }

    /// <summary>
    /// New images first (their history rows may already be on the server), then history batches. An upload failure never
    /// holds the history back; a transient one is thrown afterwards while finishing, so the finish retries it.
    /// </summary>
    private async Task<bool> SendPendingAsync(bool drainAll, CancellationToken cancel)
    {
        bool sent = false;
        WandbTransientException? uploadTrouble = null;
        var pending = _spool.PendingMedia().Except(_putNotAnnounced).Except(_failedUploads).ToList();
        if (pending.Count > 0)
        {
            if (DateTime.UtcNow >= _uploadNotBefore)
            {
                uploadTrouble = await UploadAsync(pending, cancel);
                if (uploadTrouble is null) _uploadFailures = 0;
                else _uploadNotBefore = DateTime.UtcNow + (uploadTrouble.RetryAfter ?? Backoff(++_uploadFailures));
            }
            else uploadTrouble = new WandbTransientException(_lastError ?? "an image upload waits to be retried");
        }

        while (true)
        {
            var lines = _spool.ReadLines(_sent, _batchLines, _batchBytes);
            string? summary = _summary();
            bool summaryChanged = summary is not null && summary != _lastSummary;
            if (lines.Count == 0 && !summaryChanged && _putNotAnnounced.Count == 0) break;

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

            try
            {
                await PostAsync(body.ToJsonString(), cancel);
            }
            catch (WandbProtocolException e) when (e.Status == 413 && lines.Count > 1)
            {
                // Too large for this server: smaller batches from now on, and the same lines again at once.
                _batchLines = Math.Max(1, lines.Count / 2);
                _batchBytes = Math.Max(1, _batchBytes / 2);
                continue;
            }
            _sinceLastPost.Restart();
            sent = true;
            if (lines.Count > 0)
            {
                _sent += lines.Count;
                long acknowledged = _sent;
                _spool.Update(i => i with { Acknowledged = Math.Max(i.Acknowledged, acknowledged) });
            }
            _spool.MarkUploaded(announced);
            _putNotAnnounced.RemoveAll(announced.Contains);
            if (summary is not null) _lastSummary = summary;
            if (!drainAll && lines.Count < _batchLines) break;
            if (_spool.ReadLines(_sent, 1, long.MaxValue).Count == 0 && _putNotAnnounced.Count == 0) break;
        }
        if (drainAll && uploadTrouble is not null)
            throw new WandbTransientException(uploadTrouble.Message, _uploadNotBefore - DateTime.UtcNow is { Ticks: > 0 } wait ? wait : TimeSpan.Zero);
        return sent;
    }
}
