namespace VaeKit.Tracking.Wandb;

/// <summary>What <see cref="WandbSync.Sync"/> did.</summary>
/// <param name="Url">The run's page on W&amp;B.</param>
/// <param name="RowsOnServerBefore">History rows the server already had.</param>
/// <param name="RowsSent">History rows this sync sent.</param>
/// <param name="RowsInSpool">History rows in runs/NAME/wandb/.</param>
/// <param name="Completed">The server holds the run's end (<c>complete</c> was acknowledged, now or before).</param>
/// <param name="ExitCode">The run's recorded exit code (0 completed, 130 interrupted, 1 otherwise); null while it has no recorded end.</param>
public sealed record WandbSyncResult(string Url, long RowsOnServerBefore, long RowsSent, long RowsInSpool, bool Completed, int? ExitCode);

/// <summary>
/// <c>vae wandb sync runs/NAME</c>: uploads what runs/NAME/wandb/ holds and the server lacks. Sending starts at the larger
/// of the server's history line count (from UpsertBucket on the run's own ID; it lags behind writes on the hosted
/// service) and the lines the spool knows were acknowledged, so running it again (or after a partly delivered online
/// run) sends nothing twice and skips nothing. Images already confirmed (uploaded.txt)
/// are not uploaded again; <c>complete</c> is posted once, with the run's recorded exit code.
/// </summary>
public static class WandbSync
{
    /// <summary>Uploads what the spool of <paramref name="runDirectory"/> holds and the server lacks, waiting at most <paramref name="timeout"/> for delivery; <paramref name="notify"/> receives progress lines. Throws <see cref="BadInputException"/> (no spool, no or refused key) or <see cref="WandbUnavailableException"/> (server unreachable, or rows left undelivered).</summary>
    public static WandbSyncResult Sync(string runDirectory, WandbSettings settings, TimeSpan timeout, Action<string> notify)
    {
        string directory = Path.Combine(Path.GetFullPath(runDirectory), "wandb");
        if (!WandbSpool.Exists(directory))
            throw new BadInputException($"{runDirectory} has no W&B run ({directory}/run.json is missing); it was trained without {Settings.Run.WandbTracking}.");
        if (string.IsNullOrEmpty(settings.ApiKey))
            throw new BadInputException("vae wandb sync needs an API key: set WANDB_API_KEY or add the server to ~/.netrc.");

        using var spool = WandbSpool.Open(directory);
        using var api = new WandbApi(settings.BaseUrl, settings.ApiKey, settings.Timing);
        WandbRunPath path;
        try
        {
            path = WandbRun.Upsert(api, spool, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (WandbAuthException e)
        {
            throw new BadInputException($"W&B at {settings.BaseUrl} refused the API key ({e.Message}). Check WANDB_API_KEY or ~/.netrc.");
        }
        catch (WandbTransientException e)
        {
            throw new WandbUnavailableException($"W&B at {settings.BaseUrl} is not answering ({e.Message}); nothing was sent. Try again later.");
        }
        catch (WandbProtocolException e)
        {
            throw new WandbUnavailableException($"W&B at {settings.BaseUrl} refused the run ({e.Message}); nothing was sent.");
        }

        var info = spool.Info;
        long inSpool = spool.LineCount;
        var sender = new WandbSender(api, spool, settings.Timing, path, c => WandbRun.Upsert(api, spool, c), () => spool.Summary, notify);
        long before = sender.StartOffset;
        notify($"W&B run {info.Url}: the server has {before} of {inSpool} row(s)");
        int? complete = info.CompleteSent ? null : info.ExitCode;
        bool delivered = sender.Finish(complete, timeout);
        if (!delivered)
        {
            var (rows, files) = sender.Undelivered;
            throw new WandbUnavailableException(
                $"W&B sync stopped with {rows} row(s) and {files} image(s) still to send ({sender.LastError ?? "timed out"}); run it again to continue.");
        }
        if (complete is not null) spool.Update(i => i with { CompleteSent = true });
        if (info.ExitCode is null)
            notify("W&B: this run has no recorded end (still training, or killed); it was not marked finished.");
        return new WandbSyncResult(spool.Info.Url!, before, sender.Sent - before, inSpool, spool.Info.CompleteSent, info.ExitCode);
    }
}

/// <summary>The server could not be reached or stopped answering; the spool is intact and the command can be rerun.</summary>
public sealed class WandbUnavailableException(string message) : Exception(message);
