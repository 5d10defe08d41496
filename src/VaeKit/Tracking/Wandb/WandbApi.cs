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
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>The server understood and refused (other 4xx, GraphQL errors): retrying the same request will not help.</summary>
public sealed class WandbProtocolException(string message) : Exception(message);

/// <summary>entity/project/run name as the server returned them from UpsertBucket; every later call uses these.</summary>
public sealed record WandbRunPath(string Entity, string Project, string Name, long HistoryLineCount);

/// <summary>A signed URL from CreateRunFiles and the headers its PUT must carry.</summary>
public sealed record WandbUploadTarget(string Name, string Url, IReadOnlyList<string> Headers);

/// <summary>
/// The wire protocol of docs/wandb-protocol.md: GraphQL (Viewer, UpsertBucket, CreateRunFiles), the file_stream
/// endpoint and signed-URL PUTs. Basic auth ("api:" + key) goes only to URLs under the base URL; upload URLs get none.
/// Every failure is classified (auth / transient / protocol) and its message never holds the key.
/// </summary>
public sealed class WandbApi : IDisposable
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

    private readonly string _baseUrl;
    private readonly string _key;
    private readonly HttpClient _http;
    private readonly TimeSpan _timeout;

    public WandbApi(string baseUrl, string apiKey, TimeSpan requestTimeout)
    {
        _baseUrl = baseUrl.TrimEnd('/');
        _key = apiKey;
        _timeout = requestTimeout;
        // Timeouts are per request (below); the handler's own stays infinite so one slow call cannot poison the client.
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = requestTimeout, PooledConnectionLifetime = TimeSpan.FromMinutes(2) })
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

    /// <summary>Creates the run or, for an existing (entity, project, name), updates it and returns its history line count.</summary>
    public async Task<WandbRunPath> UpsertBucketAsync(string runId, string project, string? entity, string displayName,
                                                     string configJsonString, IReadOnlyList<string> tags, string host, CancellationToken cancel)
    {
        var variables = new JsonObject
        {
            ["name"] = runId, ["project"] = project, ["entity"] = entity, ["displayName"] = displayName,
            ["jobType"] = "train", ["host"] = host, ["config"] = configJsonString,
            ["tags"] = new JsonArray(tags.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
        };
        var data = await GraphQLAsync("UpsertBucket", UpsertBucketQuery, variables, cancel);
        var bucket = data["upsertBucket"]?["bucket"] ?? throw new WandbProtocolException("UpsertBucket returned no bucket");
        var projectNode = bucket["project"];
        return new WandbRunPath(
            projectNode?["entity"]?["name"]?.GetValue<string>() ?? entity ?? throw new WandbProtocolException("UpsertBucket returned no entity"),
            projectNode?["name"]?.GetValue<string>() ?? project,
            bucket["name"]?.GetValue<string>() ?? runId,
            ReadLong(bucket["historyLineCount"]));
    }

    public async Task<IReadOnlyList<WandbUploadTarget>> CreateRunFilesAsync(WandbRunPath run, IReadOnlyList<string> files, CancellationToken cancel)
    {
        var variables = new JsonObject
        {
            ["entity"] = run.Entity, ["project"] = run.Project, ["run"] = run.Name,
            ["files"] = new JsonArray(files.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray()),
        };
        var data = await GraphQLAsync("CreateRunFiles", CreateRunFilesQuery, variables, cancel);
        var result = data["createRunFiles"] ?? throw new WandbProtocolException("CreateRunFiles returned nothing");
        var headers = (result["uploadHeaders"] as JsonArray)?.Select(h => h?.GetValue<string>()).OfType<string>().ToList() ?? [];
        var targets = new List<WandbUploadTarget>();
        foreach (var file in (result["files"] as JsonArray) ?? [])
        {
            string? name = file?["name"]?.GetValue<string>(), url = file?["uploadUrl"]?.GetValue<string>();
            if (name is not null && url is not null) targets.Add(new WandbUploadTarget(name, url, headers));
        }
        return targets;
    }

    /// <summary>PUT to a signed URL: raw bytes, the upload headers, and no W&amp;B credentials.</summary>
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
                request.Content.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await SendAsync(request, "upload", cancel);
    }

    /// <summary>One file_stream post; the body is already JSON (its history lines may hold bare NaN tokens inside strings).</summary>
    public async Task<JsonNode?> FileStreamAsync(WandbRunPath run, string body, CancellationToken cancel)
    {
        string url = $"{_baseUrl}/files/{Uri.EscapeDataString(run.Entity)}/{Uri.EscapeDataString(run.Project)}/{Uri.EscapeDataString(run.Name)}/file_stream";
        using var request = Authorized(HttpMethod.Post, url);
        request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await SendAsync(request, "file_stream", cancel);
        string text = await response.Content.ReadAsStringAsync(cancel);
        try { return text.Length == 0 ? null : JsonNode.Parse(text); }
        catch (JsonException) { return null; }   // the response carries only hints ("stopped", "limits")
    }

    private async Task<JsonNode> GraphQLAsync(string operation, string query, JsonObject variables, CancellationToken cancel)
    {
        var payload = new JsonObject { ["query"] = query, ["variables"] = variables, ["operationName"] = operation };
        using var request = Authorized(HttpMethod.Post, _baseUrl + "/graphql");
        request.Content = new StringContent(payload.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await SendAsync(request, operation, cancel);
        string text = await response.Content.ReadAsStringAsync(cancel);
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException) { throw new WandbTransientException($"{operation}: the server sent no JSON"); }
        if (node?["errors"] is JsonArray { Count: > 0 } errors)
        {
            string message = Redact(errors[0]?["message"]?.ToString() ?? "unknown error");
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

    /// <summary>Sends with the per-request timeout and turns every failure into one of the three exception kinds.</summary>
    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, string what, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(_timeout);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new WandbTransientException($"{what}: no answer within {_timeout.TotalSeconds:0.#} s");
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
        response.Dispose();
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            throw new WandbAuthException($"{what}: HTTP {status} (the server refused the API key)");
        if (status >= 500 || response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout)
            throw new WandbTransientException($"{what}: HTTP {status}", retryAfter);
        throw new WandbProtocolException($"{what}: HTTP {status}");
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
public static class Redactor
{
    public static string Redact(string text, string? secret)
    {
        if (string.IsNullOrEmpty(secret)) return text;
        string basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + secret));
        return text.Replace(secret, "[redacted]", StringComparison.Ordinal).Replace(basic, "[redacted]", StringComparison.Ordinal);
    }
}
