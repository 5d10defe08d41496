namespace VaeKit.Tracking.Wandb;

/// <summary>What happens to a run's W&amp;B tracking (<c>WANDB_MODE</c>).</summary>
public enum WandbMode
{
    /// <summary>Spool to runs/NAME/wandb/ and upload while training.</summary>
    Online,
    /// <summary>Spool only; upload later with <c>vae wandb sync</c>.</summary>
    Offline,
    /// <summary>No tracking at all.</summary>
    Disabled,
}

/// <summary>
/// Where and how a run is tracked on Weights &amp; Biases, resolved the way W&amp;B users know it: flags first, then
/// <c>WANDB_PROJECT</c>, <c>WANDB_ENTITY</c>, <c>WANDB_BASE_URL</c>, <c>WANDB_MODE</c>; the API key only from
/// <c>WANDB_API_KEY</c> or the base URL's host in <c>~/.netrc</c> (or <c>$NETRC</c>).
/// </summary>
/// <remarks>The key is never serialised or printed: <see cref="ToString"/> leaves it out, and no file VaeKit writes holds it.</remarks>
public sealed record WandbSettings
{
    /// <summary>The hosted W&amp;B API.</summary>
    public const string DefaultBaseUrl = "https://api.wandb.ai";
    /// <summary>Project used when neither a flag nor WANDB_PROJECT names one.</summary>
    public const string DefaultProject = "vaekit";

    /// <summary>Online, offline (spool only) or disabled (WANDB_MODE).</summary>
    public WandbMode Mode { get; init; } = WandbMode.Online;
    /// <summary>The W&amp;B API server (WANDB_BASE_URL); set it for a self-hosted server.</summary>
    public string BaseUrl { get; init; } = DefaultBaseUrl;
    /// <summary>The W&amp;B project the run goes to (WANDB_PROJECT).</summary>
    public string Project { get; init; } = DefaultProject;
    /// <summary>null: the key's default entity, as the server decides.</summary>
    public string? Entity { get; init; }
    /// <summary>Display name on the run page; null = the VaeKit run name.</summary>
    public string? DisplayName { get; init; }
    /// <summary>Tags shown on the run page.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];
    /// <summary>Never written anywhere; null in offline mode when no key is configured.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Timeouts, heartbeats and retry delays of the upload client.</summary>
    public WandbTiming Timing { get; init; } = new();
    /// <summary>The run's <c>program</c> on W&amp;B (the official client sends the script's name).</summary>
    public string Program { get; init; } = "vae";
    /// <summary>Where the git commit and remote are read (<c>git rev-parse HEAD</c>); null = the current directory.</summary>
    public string? CodeDirectory { get; init; }
    /// <summary>
    /// The longest history line the server takes (the official client's limit: 10 MiB − 100 KiB); a longer row is
    /// trimmed, largest values first, with a warning.
    /// </summary>
    public int MaxLineBytes { get; init; } = (10 << 20) - (100 << 10);

    /// <summary>The web page of a run: wandb.ai for the SaaS API host, the server itself when self-hosted.</summary>
    public string RunUrl(string entity, string project, string runId)
    {
        var uri = new Uri(BaseUrl);
        string app = uri.Host == "api.wandb.ai" ? "https://wandb.ai" : BaseUrl.TrimEnd('/');
        return $"{app}/{Uri.EscapeDataString(entity)}/{Uri.EscapeDataString(project)}/runs/{Uri.EscapeDataString(runId)}";
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"WandbSettings {{ Mode = {Mode}, BaseUrl = {BaseUrl}, Project = {Project}, Entity = {Entity}, Key = {(ApiKey is null ? "none" : "set")} }}";

    /// <summary>
    /// Flags override the environment. <paramref name="environment"/> is the process environment in the CLI; tests pass
    /// a dictionary. Throws <see cref="BadInputException"/> for an unknown WANDB_MODE or a malformed base URL.
    /// </summary>
    public static WandbSettings Resolve(Func<string, string?> environment, string? project = null, string? entity = null,
                                        string? displayName = null, IReadOnlyList<string>? tags = null)
    {
        string? Env(string name) => environment(name) is { Length: > 0 } v ? v.Trim() : null;

        var mode = Env("WANDB_MODE")?.ToLowerInvariant() switch
        {
            null or "online" or "run" => WandbMode.Online,
            "offline" or "dryrun" => WandbMode.Offline,
            "disabled" => WandbMode.Disabled,
            var other => throw new BadInputException($"WANDB_MODE={other} is not one of online, offline, disabled."),
        };
        string baseUrl = (Env("WANDB_BASE_URL") ?? DefaultBaseUrl).TrimEnd('/');
        if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new BadInputException($"WANDB_BASE_URL={baseUrl} is not an http(s) URL, e.g. https://api.wandb.ai or http://host:8080.");

        string? key = Env("WANDB_API_KEY") ?? Netrc.Password(NetrcPath(environment), uri.Host);
        return new WandbSettings
        {
            Mode = mode,
            BaseUrl = baseUrl,
            Project = project ?? Env("WANDB_PROJECT") ?? DefaultProject,
            Entity = entity ?? Env("WANDB_ENTITY"),
            DisplayName = displayName,
            Tags = tags ?? [],
            ApiKey = key,
        };
    }

    private static string? NetrcPath(Func<string, string?> environment)
    {
        if (environment("NETRC") is { Length: > 0 } explicitPath) return explicitPath;
        string? home = environment("HOME");
        return string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".netrc");
    }
}

/// <summary>
/// The sender's clock. Defaults follow the official client (post at most every 15 s, heartbeat after 30 s idle,
/// back off 2 s … 60 s); tests shorten them.
/// </summary>
public sealed record WandbTiming
{
    /// <summary>Rows are batched and posted this often.</summary>
    public TimeSpan TransmitInterval { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>An empty file_stream post when nothing was sent for this long keeps the run "running".</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// The key check and run creation before training may block this long at most; an unreachable or hanging server
    /// is then left to the background sender.
    /// </summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>One GraphQL request may take this long before it counts as failed (a hanging server); official: 30 s.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// One file_stream post or signed-URL upload may take this long (official file_stream: 180 s). Shorter would make a
    /// slow server receive the same lines again.
    /// </summary>
    public TimeSpan FileStreamTimeout { get; init; } = TimeSpan.FromSeconds(180);
    /// <summary>How often UpsertBucket is retried on HTTP 409 (a concurrent update) before the server's message is reported.</summary>
    public int ConflictRetries { get; init; } = 20;
    /// <summary>First retry delay after a failure; doubles up to <see cref="MaxBackoff"/>. Retry-After wins when given.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Longest retry delay.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>At the end of training, how long the sender may keep trying before leaving the rest in the spool.</summary>
    public TimeSpan FinishTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>Reads the password of one machine from a netrc file (the format curl and Python's netrc use).</summary>
internal static class Netrc
{
    public static string? Password(string? path, string host)
    {
        if (path is null || !File.Exists(path)) return null;
        string[] tokens;
        try { tokens = File.ReadAllText(path).Split((char[])[' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }

        string? machine = null, password = null, defaultPassword = null;
        bool inDefault = false;
        for (int i = 0; i < tokens.Length; i++)
        {
            switch (tokens[i])
            {
                case "machine" when i + 1 < tokens.Length:
                    if (machine == host && password is not null) return password;
                    machine = tokens[++i]; password = null; inDefault = false;
                    break;
                case "default":
                    if (machine == host && password is not null) return password;
                    machine = null; inDefault = true;
                    break;
                case "password" when i + 1 < tokens.Length:
                    if (inDefault) defaultPassword = tokens[++i];
                    else password = tokens[++i];
                    break;
                case "login" or "account" when i + 1 < tokens.Length:
                    i++;
                    break;
            }
        }
        return machine == host && password is not null ? password : defaultPassword;
    }
}
