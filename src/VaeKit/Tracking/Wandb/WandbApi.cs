using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VaeKit.Tracking.Wandb;

/// <summary>The server said no to the key (HTTP 401/403): retrying will not help.</summary>
public sealed class WandbAuthException(string message) : Exception(message);

/// <summary>Worth retrying: 5xx, 429, a timeout, a refused or reset connection. <see cref="RetryAfter"/> is the server's wish.</summary>
public sealed class WandbTransientException(string message, TimeSpan? retryAfter = null) : Exception(message)
{
    /// <summary>How long the server asked to wait (HTTP Retry-After); null when it did not say.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>The server understood and refused (other 4xx, GraphQL errors): retrying the same request will not help.</summary>
public sealed class WandbProtocolException(string message, int? status = null) : Exception(message)
{
    /// <summary>The HTTP status, when the refusal was one (413: the request was too large).</summary>
    public int? Status { get; } = status;
}

/// <summary>
/// A file upload failed for good (CreateRunFiles refused, or the signed-URL storage said 4xx, e.g. 403 for an expired or
/// mismatched signature). As in the official client it is reported and skipped; the run and its metrics go on.
/// </summary>
public sealed class WandbUploadException(string message) : Exception(message);

/// <summary>
/// entity/project/run name as the server returned them from UpsertBucket; every later call uses these.
/// <see cref="Inserted"/>: the upsert created the run (so the server holds no history yet).
/// </summary>
internal sealed record WandbRunPath(string Entity, string Project, string Name, long HistoryLineCount, bool Inserted = false);

/// <summary>What UpsertBucket says about the run besides its config: all optional, null when unknown (sent as null).</summary>
internal sealed record WandbRunMetadata
{
    public string? DisplayName { get; init; }
    /// <summary>null when there are none: an empty list would clear tags added on the run page.</summary>
    public IReadOnlyList<string>? Tags { get; init; }
    public string? Host { get; init; }
    public string? Program { get; init; }
    public string? Commit { get; init; }
    public string? Repo { get; init; }
    public string? JobType { get; init; } = "train";
}

/// <summary>A signed URL from CreateRunFiles and the headers its PUT must carry.</summary>
internal sealed record WandbUploadTarget(string Name, string Url, IReadOnlyList<string> Headers);

/// <summary>
/// The wire protocol of docs/wandb-contract.md (taken from the official client): GraphQL (Viewer, UpsertBucket,
/// CreateRunFiles), the file_stream endpoint and signed-URL PUTs. Basic auth ("api:" + key) goes only to URLs under
/// the base URL; upload URLs get none. Every failure is classified (auth / transient / protocol / upload), carries
/// what the server said about it, and its message never holds the key.
/// </summary>
internal sealed class WandbApi : IDisposable
{
    private const string UpsertBucketQuery = """
        mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $groupName: String,
          $description: String, $displayName: String, $notes: String, $commit: String, $config: JSONString,
          $host: String, $debug: Boolean, $program: String, $repo: String, $jobType: String, $state: String,
          $sweep: String, $tags: [String!], $summaryMetrics: JSONString) {
          upsertBucket(input: { id: $id, name: $name, groupName: $groupName, modelName: $project,
            entityName: $entity, description: $description, displayName: $displayName, notes: $notes,
            config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program,
            jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags,
            summaryMetrics: $summaryMetrics }) {
            bucket { id name displayName description config sweepName
                     project { id name entity { id name } } historyLineCount }
            inserted } }
        """;

    private const string CreateRunFilesQuery = """
        mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
          createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
            runID uploadHeaders files { name uploadUrl } } }
        """;

    private const string ViewerQuery = "query Viewer { viewer { id entity username } }";

    /// <summary>How a failure is classified: the official client treats these request kinds differently (docs/wandb-contract.md §5).</summary>
    private enum Call { GraphQL, Upsert, Upload, FileStream }

    private readonly string _baseUrl;
    private readonly string _key;
    private readonly HttpClient _http;
    private readonly WandbTiming _timing;

    public WandbApi(string baseUrl, string apiKey, WandbTiming timing)
    {
        _baseUrl = baseUrl.TrimEnd('/');
        _key = apiKey;
        _timing = timing;
        // Timeouts are per request (below); the handler's own stays infinite so one slow call cannot poison the client.
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = timing.RequestTimeout, PooledConnectionLifetime = TimeSpan.FromMinutes(2) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd($"vaekit/{typeof(WandbApi).Assembly.GetName().Version}");
    }

    /// <summary>The key's default entity; throws <see cref="WandbAuthException"/> for a key the server refuses.</summary>
    public async Task<string?> ViewerAsync(CancellationToken cancel)
    {
        var data = await GraphQLAsync("Viewer", ViewerQuery, new JsonObject(), cancel);
        if (data["viewer"] is not JsonObject viewer)
            throw new WandbAuthException("the server knows no user for this API key");
        return viewer["entity"]?.GetValue<string>();
    }

    /// <summary>
    /// Creates the run or, for an existing (entity, project, name), updates it and returns its history line count. Every
    /// variable of the official document is sent, null when unset. HTTP 409 (a concurrent update) is retried up to
    /// <see cref="WandbTiming.ConflictRetries"/> times with backoff, as the official client does.
    /// </summary>
    public async Task<WandbRunPath> UpsertBucketAsync(string runId, string project, string? entity, string configJsonString,
                                                     WandbRunMetadata metadata, CancellationToken cancel)
    {
        var variables = new JsonObject
        {
            ["id"] = null, ["name"] = runId, ["project"] = project, ["entity"] = entity, ["groupName"] = null,
            ["description"] = null, ["displayName"] = metadata.DisplayName, ["notes"] = null, ["commit"] = metadata.Commit,
            ["config"] = configJsonString, ["host"] = metadata.Host, ["debug"] = null, ["program"] = metadata.Program,
            ["repo"] = metadata.Repo, ["jobType"] = metadata.JobType, ["state"] = null, ["sweep"] = null,
            ["tags"] = metadata.Tags is { Count: > 0 } tags ? new JsonArray(tags.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()) : null,
            ["summaryMetrics"] = null,
        };
        JsonNode data;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                data = await GraphQLAsync("UpsertBucket", UpsertBucketQuery, variables, Call.Upsert, cancel);
                break;
            }
            catch (WandbProtocolException e) when (e.Status == 409 && attempt <= _timing.ConflictRetries)
            {
                double seconds = Math.Min(_timing.MinBackoff.TotalSeconds * Math.Pow(2, Math.Min(attempt - 1, 16)), _timing.MaxBackoff.TotalSeconds);
                await Task.Delay(TimeSpan.FromSeconds(seconds), cancel);
            }
        }
        var bucket = data["upsertBucket"]?["bucket"] ?? throw new WandbProtocolException("UpsertBucket returned no bucket");
        var projectNode = bucket["project"];
        return new WandbRunPath(
            projectNode?["entity"]?["name"]?.GetValue<string>() ?? entity ?? throw new WandbProtocolException("UpsertBucket returned no entity"),
            projectNode?["name"]?.GetValue<string>() ?? project,
            bucket["name"]?.GetValue<string>() ?? runId,
            ReadLong(bucket["historyLineCount"]),
            data["upsertBucket"]?["inserted"] is JsonValue inserted && inserted.TryGetValue(out bool wasInserted) && wasInserted);
    }

    /// <summary>Signed upload URLs for run files. Any refusal (4xx, a GraphQL error) is a <see cref="WandbUploadException"/>.</summary>
    public async Task<IReadOnlyList<WandbUploadTarget>> CreateRunFilesAsync(WandbRunPath run, IReadOnlyList<string> files, CancellationToken cancel)
    {
        var variables = new JsonObject
        {
            ["entity"] = run.Entity, ["project"] = run.Project, ["run"] = run.Name,
            ["files"] = new JsonArray(files.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray()),
        };
        var data = await GraphQLAsync("CreateRunFiles", CreateRunFilesQuery, variables, Call.Upload, cancel);
        var result = data["createRunFiles"] ?? throw new WandbUploadException("CreateRunFiles returned nothing");
        var headers = (result["uploadHeaders"] as JsonArray)?.Select(h => h?.GetValue<string>()).OfType<string>().ToList() ?? [];
        var targets = new List<WandbUploadTarget>();
        foreach (var file in (result["files"] as JsonArray) ?? [])
        {
            string? name = file?["name"]?.GetValue<string>(), url = file?["uploadUrl"]?.GetValue<string>();
            if (name is not null && url is not null) targets.Add(new WandbUploadTarget(name, url, headers));
        }
        return targets;
    }

    /// <summary>
    /// PUT to a signed URL: raw bytes, every upload header (split at the first colon), and no W&amp;B credentials. A 4xx
    /// from storage is a <see cref="WandbUploadException"/>; 408, 429 and 5xx are transient.
    /// </summary>
    public async Task PutFileAsync(WandbUploadTarget target, byte[] content, CancellationToken cancel)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, target.Url) { Content = new ByteArrayContent(content) };
        request.Content.Headers.ContentLength = content.Length;
        foreach (var header in target.Headers)
        {
            int colon = header.IndexOf(':');
            if (colon <= 0) continue;
            string name = header[..colon].Trim(), value = header[(colon + 1)..].Trim();
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content.Headers.Remove(name);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }
        using var response = await SendAsync(request, $"upload of {target.Name}", Call.Upload, cancel);
    }

    /// <summary>
    /// One file_stream post (timeout <see cref="WandbTiming.FileStreamTimeout"/>); the body is already JSON (its history
    /// lines may hold bare NaN tokens inside strings). Returns the reply, which may hold <c>"stopped": true</c>.
    /// </summary>
    public async Task<JsonNode?> FileStreamAsync(WandbRunPath run, string body, CancellationToken cancel)
    {
        string url = $"{_baseUrl}/files/{Uri.EscapeDataString(run.Entity)}/{Uri.EscapeDataString(run.Project)}/{Uri.EscapeDataString(run.Name)}/file_stream";
        using var request = Authorized(HttpMethod.Post, url);
        request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await SendAsync(request, "file_stream", Call.FileStream, cancel);
        string text = await response.Content.ReadAsStringAsync(cancel);
        try { return text.Length == 0 ? null : JsonNode.Parse(text); }
        catch (JsonException) { return null; }   // the response carries only hints ("stopped", "limits")
    }

    private Task<JsonNode> GraphQLAsync(string operation, string query, JsonObject variables, CancellationToken cancel) =>
        GraphQLAsync(operation, query, variables, Call.GraphQL, cancel);

    private async Task<JsonNode> GraphQLAsync(string operation, string query, JsonObject variables, Call call, CancellationToken cancel)
    {
        var payload = new JsonObject { ["query"] = query, ["variables"] = variables.DeepClone(), ["operationName"] = operation };
        using var request = Authorized(HttpMethod.Post, _baseUrl + "/graphql");
        request.Content = new StringContent(payload.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await SendAsync(request, operation, call, cancel);
        string text = await response.Content.ReadAsStringAsync(cancel);
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException) { throw new WandbTransientException($"{operation}: the server sent no JSON"); }
        if (ServerMessage(text) is string message && node?["errors"] is JsonArray { Count: > 0 })
        {
            if (call == Call.Upload) throw new WandbUploadException($"{operation}: {message}");
            if (message.Contains("auth", StringComparison.OrdinalIgnoreCase) || message.Contains("permission", StringComparison.OrdinalIgnoreCase))
                throw new WandbAuthException($"{operation}: {message}");
            throw new WandbProtocolException($"{operation}: {message}");
        }
        return node?["data"] ?? throw new WandbProtocolException($"{operation}: no data in the response");
    }

    private HttpRequestMessage Authorized(HttpMethod method, string url)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + _key)));
        return request;
    }

    /// <summary>Sends with the per-request timeout and turns every failure into one of the exception kinds, with the server's words.</summary>
    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, string what, Call call, CancellationToken cancel)
    {
        // GraphQL gets the official 30 s; file_stream posts (180 s) and storage PUTs may take long without having failed.
        var limit = call == Call.FileStream || request.Method == HttpMethod.Put ? _timing.FileStreamTimeout : _timing.RequestTimeout;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(limit);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new WandbTransientException($"{what}: no answer within {limit.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException e)
        {
            throw new WandbTransientException($"{what}: {Redact(e.Message)}");
        }

        if (response.IsSuccessStatusCode) return response;
        int status = (int)response.StatusCode;
        TimeSpan? retryAfter = response.Headers.RetryAfter switch
        {
            { Delta: TimeSpan delta } => delta,
            { Date: DateTimeOffset date } => date - DateTimeOffset.UtcNow is { Ticks: > 0 } wait ? wait : TimeSpan.Zero,
            _ => null,
        };
        string body;
        try { body = await response.Content.ReadAsStringAsync(cancel); }
        catch (Exception e) when (e is HttpRequestException or IOException) { body = ""; }
        response.Dispose();
        string said = ServerMessage(body) is string m ? $": {m}" : "";
        bool transient = status >= 500 && status != 501 || status is 408 or 429;
        if (transient) throw new WandbTransientException($"{what}: HTTP {status}{said}", retryAfter);
        if (call == Call.Upload) throw new WandbUploadException($"{what}: HTTP {status}{said}");
        if (status is 401 or 403)
            throw new WandbAuthException($"{what}: HTTP {status} (the server refused the API key){said}");
        throw new WandbProtocolException($"{what}: HTTP {status}{said}", status);
    }

    /// <summary>
    /// What the server said in an error body: a GraphQL <c>errors[].message</c> list (joined with "; "), an
    /// <c>error</c> string or object, or short plain text (storage answers XML); redacted and cut to 300 characters.
    /// </summary>
    internal string? ServerMessage(string body)
    {
        if (string.IsNullOrWhiteSpace(body)) return null;
        string? text = null;
        try
        {
            var node = JsonNode.Parse(body);
            static string? Message(JsonNode? n) => n switch
            {
                JsonValue v when v.TryGetValue(out string? s) => s,
                JsonObject o => o["message"] is JsonValue mv && mv.TryGetValue(out string? ms) ? ms : null,
                _ => null,
            };
            if (node is JsonObject o && o["error"] is { } error) text = Message(error);
            else if (node is JsonObject e && e["errors"] is JsonArray errors)
                text = string.Join("; ", errors.Select(Message).OfType<string>().Where(x => x.Length > 0));
        }
        catch (JsonException)
        {
            text = body.ReplaceLineEndings(" ").Trim();
        }
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = Redact(text);
        return text.Length > 300 ? text[..300] + "…" : text;
    }

    public string RunUrl(WandbRunPath run) => new WandbSettings { BaseUrl = _baseUrl }.RunUrl(run.Entity, run.Project, run.Name);

    /// <summary>Server text may echo a header back; the key never leaves this class in a message.</summary>
    public string Redact(string text) => Redactor.Redact(text, _key);

    private static long ReadLong(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue(out long l) => l,
        JsonValue v when v.TryGetValue(out double d) => (long)d,
        JsonValue v when v.TryGetValue(out string? s) && long.TryParse(s, out long p) => p,
        _ => 0,
    };

    public void Dispose() => _http.Dispose();
}

/// <summary>Removes a secret (and its Basic-auth encoding) from text that may be shown or stored.</summary>
internal static class Redactor
{
    public static string Redact(string text, string? secret)
    {
        if (string.IsNullOrEmpty(secret)) return text;
        string basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + secret));
        return text.Replace(secret, "[redacted]", StringComparison.Ordinal).Replace(basic, "[redacted]", StringComparison.Ordinal);
    }
}
