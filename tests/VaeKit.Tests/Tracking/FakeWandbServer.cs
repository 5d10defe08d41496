using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VaeKit.Tests.Tracking;

/// <summary>
/// An in-process W&amp;B backend on 127.0.0.1, modelled on the official client's backend spy
/// (tests/fixtures/wandb_backend_spy): GraphQL (Viewer, UpsertBucket, CreateRunFiles, RunUploadUrls), file_stream and
/// a PUT sink for the upload URLs it hands out. It records what a run page would show and lists every protocol
/// violation it sees in <see cref="Violations"/>: a wrong Basic header, a config that is not a JSON string of
/// {key: {value}}, history gaps or rewrites, a _step that does not increase, a summary not at offset 0, a file
/// announced as uploaded before its PUT, credentials on a signed-URL PUT, a quoted "NaN".
/// Like the hosted service (docs/wandb-contract.md): UpsertBucket's <c>historyLineCount</c> trails what was received
/// (<see cref="HistoryLag"/>); a signed-URL PUT without the upload headers CreateRunFiles named is refused with 403;
/// file_stream bodies over <see cref="MaxRequestBytes"/> get 413 and history lines over <see cref="MaxLineBytes"/> 400;
/// <c>tags: null</c> leaves the run's tags alone; <see cref="Stopped"/> makes file_stream answer <c>{"stopped": true}</c>.
/// Faults: <see cref="FailNext"/> (status codes, Retry-After), <see cref="FailNextOn"/> (one operation, with a body),
/// <see cref="Hang"/>, <see cref="StopListening"/>, <see cref="FileStreamDelay"/>. Every request is kept in
/// <see cref="Requests"/> for the contract tests.
/// </summary>
public sealed partial class FakeWandbServer : IDisposable
{
    public const string UploadHeader = "X-Fake-Upload-Token";
    /// <summary>What CreateRunFiles hands out as <c>uploadHeaders</c>; the PUT must carry each (the signature covers them).</summary>
    public static readonly string[] UploadHeaders = [$"{UploadHeader}:ok", "Content-Type:image/png"];
    private readonly Lock _gate = new();
    private readonly List<(string Route, int Status, string Body)> _routeFailures = [];
    private readonly string _expectedAuth;
    private HttpListener? _listener;
    private readonly List<(int Status, TimeSpan? RetryAfter)> _failures = [];
    private TaskCompletionSource _released = Released();

    public FakeWandbServer(string apiKey, string entity = "fake-entity")
    {
        _expectedAuth = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + apiKey));
        Entity = entity;
        Port = FreePort();
        StartListening();
    }

    public int Port { get; }
    public string BaseUrl => $"http://127.0.0.1:{Port}";
    public string Entity { get; }
    /// <summary>Whether the UpsertBucket config must wrap each key as {"value": …} (the official Python/Go clients do; wandb-js does not).</summary>
    public bool StrictConfig { get; set; } = true;

    // What the run page would show.
    public string? RunName { get; private set; }
    public string? Project { get; private set; }
    public string? DisplayName { get; private set; }
    public List<string> Tags { get; } = [];
    public JsonObject? Config { get; private set; }
    public SortedDictionary<long, string> History { get; } = [];
    public int HistoryCount { get { lock (_gate) return History.Count; } }
    public string? Summary { get; private set; }
    public HashSet<string> Created { get; } = [];
    public Dictionary<string, byte[]> Put { get; } = [];
    public HashSet<string> Uploaded { get; } = [];
    public bool Complete { get; private set; }
    public int? ExitCode { get; private set; }
    public int Heartbeats { get; private set; }
    public int FileStreamPosts { get; private set; }
    public int Upserts { get; private set; }
    public int RefusedKeys { get; private set; }
    /// <summary>Requests held unanswered while <see cref="Hang"/> was on.</summary>
    public int Held { get { lock (_gate) return _held; } }
    private int _held;
    public int Injected { get { lock (_gate) return Log.Count(l => l.EndsWith("(injected)")); } }
    public List<string> Violations { get; } = [];
    public List<string> Log { get; } = [];

    /// <summary>How many received history lines UpsertBucket's historyLineCount leaves out (the hosted count settles seconds after writes).</summary>
    public int HistoryLag { get; set; } = 2;
    /// <summary>History lines posted again at an offset that already held the same line (a client that re-sends what was acknowledged).</summary>
    public int ResentLines { get { lock (_gate) return _resent; } }
    private int _resent;
    /// <summary>file_stream answers {"stopped": true} (the Stop button on the run page).</summary>
    public bool Stopped { get; set; }
    /// <summary>file_stream bodies longer than this are refused with 413 and not processed.</summary>
    public int MaxRequestBytes { get; set; } = 10 << 20;
    /// <summary>A history line longer than this is refused with 400 (the service's per-line limit).</summary>
    public int MaxLineBytes { get; set; } = (10 << 20) - (100 << 10);
    /// <summary>file_stream posts are processed at once but answered only after this long (a slow server).</summary>
    public TimeSpan FileStreamDelay { get; set; } = TimeSpan.Zero;
    /// <summary>PUTs refused because an upload header was missing or wrong.</summary>
    public int RefusedPuts { get; private set; }
    public string? Program { get; private set; }
    public string? Commit { get; private set; }
    public string? Repo { get; private set; }
    public string? Host { get; private set; }
    /// <summary>What the official SDK's resume checks: the config's _wandb block holds "t" (else it treats the run as never started).</summary>
    public bool LooksStarted => Config?["_wandb"]?["t"] is JsonObject;
    /// <summary>Every request as received, in order (the contract tests read them).</summary>
    public List<RecordedRequest> Requests { get; } = [];

    /// <summary>One request: method, path, headers, body; for GraphQL the operation name and variables.</summary>
    public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body,
                                         string? Operation, JsonObject? Variables, int Status)
    {
        public JsonObject? Json => Body.Length > 0 && Body[0] == '{' ? JsonNode.Parse(Body) as JsonObject : null;
    }

    /// <summary>Requests of one GraphQL operation, in order.</summary>
    public List<RecordedRequest> GraphQLCalls(string operation)
    {
        lock (_gate) return Requests.Where(r => r.Operation == operation).ToList();
    }

    /// <summary>
    /// The next <paramref name="count"/> requests to <paramref name="route"/> (a GraphQL operation name, "file_stream" or
    /// "PUT") get <paramref name="status"/> and <paramref name="body"/>, and are not processed.
    /// </summary>
    public void FailNextOn(string route, int count, int status, string body = "{}")
    {
        lock (_gate)
            for (int i = 0; i < count; i++) _routeFailures.Add((route, status, body));
    }

    /// <summary>The next <paramref name="count"/> requests fail with <paramref name="status"/> (and Retry-After when given).</summary>
    public void FailNext(int count, int status, TimeSpan? retryAfter = null)
    {
        lock (_gate)
            for (int i = 0; i < count; i++) _failures.Add((status, retryAfter));
    }

    /// <summary>While true, requests are held unanswered; when released they get 503 and are not processed.</summary>
    public bool Hang
    {
        get { lock (_gate) return !_released.Task.IsCompleted; }
        set
        {
            lock (_gate)
            {
                if (value && _released.Task.IsCompleted) _released = NewRelease();
                if (!value) _released.TrySetResult();
            }
        }
    }

    /// <summary>Closes the port: connections are refused until <see cref="StartListening"/>.</summary>
    public void StopListening()
    {
        lock (_gate)
        {
            _listener?.Close();
            _listener = null;
        }
    }

    public void StartListening()
    {
        lock (_gate)
        {
            if (_listener is not null) return;
            var listener = new HttpListener();
            listener.Prefixes.Add(BaseUrl + "/");
            listener.Start();
            _listener = listener;
            _ = Task.Run(() => AcceptLoop(listener));
        }
    }

    /// <summary>History lines in offset order, parsed (bare NaN/Infinity read as null).</summary>
    public List<JsonObject> Rows()
    {
        lock (_gate) return History.Values.Select(ParseLine).ToList();
    }

    /// <summary>Every image path in history was created with CreateRunFiles, PUT, and announced in "uploaded".</summary>
    public List<string> ImageProblems()
    {
        var problems = new List<string>();
        lock (_gate)
            foreach (var line in History.Values)
                foreach (Match m in ImagePath().Matches(line))
                {
                    string path = m.Groups[1].Value;
                    if (!Created.Contains(path)) problems.Add($"{path} not created");
                    if (!Put.ContainsKey(path)) problems.Add($"{path} not PUT");
                    if (!Uploaded.Contains(path)) problems.Add($"{path} not listed as uploaded");
                }
        return problems;
    }

    private async Task AcceptLoop(HttpListener listener)
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => Handle(context));
        }
    }

    private async Task Handle(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            string path = request.Url!.AbsolutePath;
            byte[] body;
            using (var buffer = new MemoryStream())
            {
                try { await request.InputStream.CopyToAsync(buffer); }
                catch (Exception e) when (e is HttpListenerException or IOException) { return; }   // the client gave up first
                body = buffer.ToArray();
            }
            string text = Encoding.UTF8.GetString(body);
            string? operation = null;
            JsonObject? variables = null;
            if (path == "/graphql")
            {
                try
                {
                    var payload = JsonNode.Parse(text)!;
                    operation = payload["operationName"]?.GetValue<string>() ?? Operation().Match(payload["query"]?.GetValue<string>() ?? "").Groups[1].Value;
                    variables = payload["variables"] as JsonObject;
                }
                catch (JsonException) { }
            }
            string route = request.HttpMethod == "PUT" ? "PUT" : path.EndsWith("/file_stream", StringComparison.Ordinal) ? "file_stream" : operation ?? path;
            var headers = request.Headers.AllKeys.OfType<string>().ToDictionary(k => k, k => request.Headers[k] ?? "", StringComparer.OrdinalIgnoreCase);

            Task release;
            (int Status, TimeSpan? RetryAfter)? failure = null;
            (string Route, int Status, string Body)? routeFailure = null;
            lock (_gate)
            {
                release = _released.Task;
                int at = _routeFailures.FindIndex(f => f.Route == route);
                if (at >= 0) { routeFailure = _routeFailures[at]; _routeFailures.RemoveAt(at); }
                else if (_failures.Count > 0) { failure = _failures[0]; _failures.RemoveAt(0); }
            }
            void Record(int status)
            {
                lock (_gate) Requests.Add(new RecordedRequest(request.HttpMethod, path, headers, text, operation, variables, status));
            }
            if (!release.IsCompleted)
            {
                lock (_gate) _held++;
                await release;
                Record(503);
                Respond(response, 503, "{}");
                return;
            }
            if (routeFailure is { } r)
            {
                lock (_gate) Log.Add($"{request.HttpMethod} {path} ({route}) -> {r.Status} (injected)");
                Record(r.Status);
                Respond(response, r.Status, r.Body);
                return;
            }
            if (failure is { } f)
            {
                if (f.RetryAfter is TimeSpan after) response.AddHeader("Retry-After", ((int)Math.Ceiling(after.TotalSeconds)).ToString());
                lock (_gate) Log.Add($"{request.HttpMethod} {path} -> {f.Status} (injected)");
                Record(f.Status);
                Respond(response, f.Status, "{\"error\":\"injected\"}");
                return;
            }

            if (request.HttpMethod == "PUT" && path.StartsWith("/upload/", StringComparison.Ordinal))
            {
                int status = HandlePut(request, path, body);
                Record(status);
                Respond(response, status, status == 200 ? "" : "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code></Error>");
                return;
            }
            if (request.Headers["Authorization"] != _expectedAuth)
            {
                lock (_gate) { RefusedKeys++; Log.Add($"{request.HttpMethod} {path} -> 401"); }
                Record(401);
                Respond(response, 401, "{\"errors\":[{\"message\":\"user is not logged in\"}]}");
                return;
            }
            if (route == "file_stream" && body.Length > MaxRequestBytes)
            {
                lock (_gate) Log.Add($"POST {path} -> 413 ({body.Length} bytes)");
                Record(413);
                Respond(response, 413, "{\"error\":\"request body too large\"}");
                return;
            }
            string answer;
            int code = 200;
            if (path == "/graphql" && request.HttpMethod == "POST") answer = GraphQL(text);
            else if (FileStreamPath().Match(path) is { Success: true } m && request.HttpMethod == "POST") (code, answer) = FileStream(m.Groups[3].Value, text);
            else { Record(404); Respond(response, 404, "{}"); return; }
            lock (_gate) Log.Add($"{request.HttpMethod} {path} ({route}) -> {code}");
            Record(code);
            if (route == "file_stream" && FileStreamDelay > TimeSpan.Zero) await Task.Delay(FileStreamDelay);
            Respond(response, code, answer);
        }
        catch (Exception e)
        {
            lock (_gate) Violations.Add($"server error: {e.GetType().Name}: {e.Message}");
            try { Respond(response, 500, "{}"); } catch (Exception) { }
        }
    }

    private string GraphQL(string text)
    {
        var payload = JsonNode.Parse(text)!;
        string query = payload["query"]?.GetValue<string>() ?? "";
        string operation = payload["operationName"]?.GetValue<string>() ?? Operation().Match(query).Groups[1].Value;
        var variables = payload["variables"] as JsonObject ?? new JsonObject();
        lock (_gate)
        {
            switch (operation)
            {
                case "Viewer":
                    return Data(new JsonObject
                    {
                        ["viewer"] = new JsonObject
                        {
                            ["id"] = "VXNlcjox", ["entity"] = Entity, ["username"] = Entity, ["flags"] = "{}",
                            ["teams"] = new JsonObject { ["edges"] = new JsonArray() }
                        },
                    });
                case "UpsertBucket":
                    return Upsert(variables);
                case "CreateRunFiles":
                    {
                        var files = new JsonArray();
                        foreach (var name in (variables["files"] as JsonArray ?? []).Select(n => n!.GetValue<string>()))
                        {
                            Created.Add(name);
                            files.Add(new JsonObject { ["name"] = name, ["uploadUrl"] = $"{BaseUrl}/upload/{Uri.EscapeDataString(name)}" });
                        }
                        return Data(new JsonObject
                        {
                            ["createRunFiles"] = new JsonObject
                            {
                                ["runID"] = "UnVuOjE=", ["uploadHeaders"] = new JsonArray(UploadHeaders.Select(h => (JsonNode)JsonValue.Create(h)!).ToArray()), ["files"] = files,
                            },
                        });
                    }
                case "RunUploadUrls":
                    {
                        var edges = new JsonArray();
                        foreach (var name in (variables["files"] as JsonArray ?? []).Select(n => n!.GetValue<string>()))
                        {
                            Created.Add(name);
                            edges.Add(new JsonObject { ["node"] = new JsonObject { ["name"] = name, ["url"] = $"{BaseUrl}/upload/{Uri.EscapeDataString(name)}", ["updatedAt"] = null } });
                        }
                        return Data(new JsonObject
                        {
                            ["model"] = new JsonObject { ["bucket"] = new JsonObject { ["id"] = "UnVuOjE=", ["files"] = new JsonObject { ["uploadHeaders"] = new JsonArray(), ["edges"] = edges } } },
                        });
                    }
                default:
                    Violations.Add($"unknown GraphQL operation '{operation}'");
                    return "{\"errors\":[{\"message\":\"unknown operation\"}]}";
            }
        }
    }

    private string Upsert(JsonObject variables)
    {
        Upserts++;
        string name = variables["name"]?.GetValue<string>() ?? "";
        if (!RunId().IsMatch(name)) Violations.Add($"run name '{name}' is not a W&B run ID");
        if (RunName is not null && RunName != name) Violations.Add($"second run '{name}' on a server holding '{RunName}'");
        RunName = name;
        Project = variables["project"]?.GetValue<string>() ?? "uncategorized";
        DisplayName = variables["displayName"]?.GetValue<string>() ?? DisplayName;
        Program = variables["program"]?.GetValue<string>() ?? Program;
        Commit = variables["commit"]?.GetValue<string>() ?? Commit;
        Repo = variables["repo"]?.GetValue<string>() ?? Repo;
        Host = variables["host"]?.GetValue<string>() ?? Host;
        // Like the service: tags null leaves the run's tags (including ones added in the web UI) alone; a list replaces them.
        if (variables["tags"] is JsonArray tags) { Tags.Clear(); Tags.AddRange(tags.Select(t => t!.GetValue<string>())); }
        if (variables["config"] is JsonNode configNode)
        {
            if (configNode.GetValueKind() != JsonValueKind.String) Violations.Add("config is not a JSON string");
            else
            {
                var parsed = JsonNode.Parse(configNode.GetValue<string>()) as JsonObject;
                if (parsed is null) Violations.Add("config string is not a JSON object");
                else
                {
                    var config = new JsonObject();
                    foreach (var (key, value) in parsed)
                    {
                        if (value is JsonObject wrapped && wrapped.ContainsKey("value")) config[key] = wrapped["value"]?.DeepClone();
                        else
                        {
                            if (StrictConfig) Violations.Add($"config key '{key}' is not wrapped as {{\"value\": …}}");
                            config[key] = value?.DeepClone();
                        }
                    }
                    Config = config;
                }
            }
        }
        return Data(new JsonObject
        {
            ["upsertBucket"] = new JsonObject
            {
                ["bucket"] = new JsonObject
                {
                    ["id"] = "UnVuOjE=", ["name"] = name, ["displayName"] = DisplayName, ["description"] = null,
                    ["config"] = variables["config"]?.DeepClone(), ["sweepName"] = null,
                    ["project"] = new JsonObject { ["id"] = "UHJvamVjdDox", ["name"] = Project, ["entity"] = new JsonObject { ["id"] = "RW50aXR5OjE=", ["name"] = variables["entity"]?.GetValue<string>() ?? Entity } },
                    ["historyLineCount"] = Math.Max(0, History.Count - HistoryLag),
                },
                ["inserted"] = Upserts == 1,
            },
        });
    }

    private (int Status, string Answer) FileStream(string run, string text)
    {
        var body = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException("file_stream body is not a JSON object");
        lock (_gate)
        {
            if (body["files"]?["wandb-history.jsonl"]?["content"] is JsonArray content
                && content.FirstOrDefault(l => Encoding.UTF8.GetByteCount(l!.GetValue<string>()) > MaxLineBytes) is { } tooLong)
            {
                Violations.Add($"a history line of {Encoding.UTF8.GetByteCount(tooLong.GetValue<string>())} bytes (limit {MaxLineBytes})");
                return (400, "{\"error\":\"history line exceeds the maximum size\"}");
            }
            FileStreamPosts++;
            if (run != RunName) Violations.Add($"file_stream for run '{run}', upserted '{RunName}'");
            if (body.Count == 0) Heartbeats++;
            if (body["files"]?["wandb-history.jsonl"] is JsonObject history)
            {
                long offset = history["offset"]!.GetValue<long>();
                var lines = (history["content"] as JsonArray ?? []).Select(l => l!.GetValue<string>()).ToList();
                if (offset > History.Count) Violations.Add($"history gap: offset {offset} with {History.Count} lines");
                for (int i = 0; i < lines.Count; i++)
                {
                    long at = offset + i;
                    if (History.TryGetValue(at, out var existing))
                    {
                        if (existing != lines[i]) Violations.Add($"history line {at} rewritten with other content");
                        else _resent++;
                    }
                    if (QuotedNonFinite().IsMatch(lines[i])) Violations.Add($"history line {at} has a quoted NaN/Infinity");
                    History[at] = lines[i];
                    if (History.TryGetValue(at - 1, out var previous))
                    {
                        long before = ParseLine(previous)["_step"]!.GetValue<long>(), now = ParseLine(lines[i])["_step"]!.GetValue<long>();
                        if (now <= before) Violations.Add($"_step {now} at line {at} after {before}");
                    }
                }
            }
            if (body["files"]?["wandb-summary.json"] is JsonObject summary)
            {
                if (summary["offset"]!.GetValue<long>() != 0) Violations.Add("summary not at offset 0");
                Summary = (summary["content"] as JsonArray)?.LastOrDefault()?.GetValue<string>();
            }
            foreach (var path in (body["uploaded"] as JsonArray ?? []).Select(p => p!.GetValue<string>()))
            {
                if (!Put.ContainsKey(path)) Violations.Add($"{path} announced as uploaded before its PUT");
                Uploaded.Add(path);
            }
            if (body["complete"]?.GetValue<bool>() == true)
            {
                Complete = true;
                ExitCode = body["exitcode"]?.GetValue<int>();
            }
        }
        return (200, Stopped ? "{\"exitcode\":null,\"limits\":{},\"stopped\":true}" : "{\"exitcode\":null,\"limits\":{}}");
    }

    /// <summary>A signed-URL PUT: no W&amp;B credentials, and every upload header CreateRunFiles named, else 403 (as storage answers).</summary>
    private int HandlePut(HttpListenerRequest request, string path, byte[] body)
    {
        string name = Uri.UnescapeDataString(path["/upload/".Length..]);
        lock (_gate)
        {
            if (request.Headers["Authorization"] is not null) Violations.Add($"PUT {name} carried an Authorization header");
            if (!Created.Contains(name)) Violations.Add($"PUT {name} without CreateRunFiles");
            foreach (var header in UploadHeaders)
            {
                string key = header[..header.IndexOf(':')], value = header[(header.IndexOf(':') + 1)..];
                if (request.Headers[key] != value)
                {
                    RefusedPuts++;
                    Violations.Add($"PUT {name} without the upload header {key}");
                    Log.Add($"PUT {name} -> 403");
                    return 403;
                }
            }
            Put[name] = body;
            Log.Add($"PUT {name} -> 200");
        }
        return 200;
    }

    /// <summary>A history line with bare NaN/Infinity tokens turned into null so System.Text.Json can read it.</summary>
    public static JsonObject ParseLine(string line) => (JsonObject)JsonNode.Parse(BareNonFinite().Replace(line, "null"))!;

    private static string Data(JsonObject data) => new JsonObject { ["data"] = data }.ToJsonString();

    private static void Respond(HttpListenerResponse response, int status, string body)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength64 = bytes.Length;
        response.OutputStream.Write(bytes);
        response.Close();
    }

    private static TaskCompletionSource NewRelease() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TaskCompletionSource Released()
    {
        var released = NewRelease();
        released.SetResult();
        return released;
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    [GeneratedRegex(@"^/files/([^/]+)/([^/]+)/([^/]+)/file_stream$")]
    private static partial Regex FileStreamPath();

    [GeneratedRegex(@"(?:mutation|query)\s+(\w+)")]
    private static partial Regex Operation();

    [GeneratedRegex("^[a-z0-9]{8}$")]
    private static partial Regex RunId();

    [GeneratedRegex(@"""path"":""(media/[^""]+)""")]
    private static partial Regex ImagePath();

    [GeneratedRegex(@"(?<=[:,\[])(NaN|-?Infinity)(?=[,}\]])")]
    private static partial Regex BareNonFinite();

    [GeneratedRegex(@":""(NaN|-?Infinity)""")]
    private static partial Regex QuotedNonFinite();

    public void Dispose()
    {
        Hang = false;
        StopListening();
    }
}
