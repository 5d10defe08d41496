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
/// Faults: <see cref="FailNext"/> (status codes, Retry-After), <see cref="Hang"/>, <see cref="StopListening"/>.
/// </summary>
public sealed partial class FakeWandbServer : IDisposable
{
    public const string UploadHeader = "X-Fake-Upload-Token";
    private readonly Lock _gate = new();
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
                await request.InputStream.CopyToAsync(buffer);
                body = buffer.ToArray();
            }
            Task release;
            (int Status, TimeSpan? RetryAfter)? failure = null;
            lock (_gate)
            {
                release = _released.Task;
                if (_failures.Count > 0) { failure = _failures[0]; _failures.RemoveAt(0); }
            }
            if (!release.IsCompleted)
            {
                lock (_gate) _held++;
                await release;
                Respond(response, 503, "{}");
                return;
            }
            if (failure is { } f)
            {
                if (f.RetryAfter is TimeSpan after) response.AddHeader("Retry-After", ((int)Math.Ceiling(after.TotalSeconds)).ToString());
                lock (_gate) Log.Add($"{request.HttpMethod} {path} -> {f.Status} (injected)");
                Respond(response, f.Status, "{\"error\":\"injected\"}");
                return;
            }

            if (request.HttpMethod == "PUT" && path.StartsWith("/upload/", StringComparison.Ordinal))
            {
                HandlePut(request, path, body, response);
                return;
            }
            if (request.Headers["Authorization"] != _expectedAuth)
            {
                lock (_gate) { RefusedKeys++; Log.Add($"{request.HttpMethod} {path} -> 401"); }
                Respond(response, 401, "{\"errors\":[{\"message\":\"user is not logged in\"}]}");
                return;
            }
            string text = Encoding.UTF8.GetString(body);
            string answer;
            if (path == "/graphql" && request.HttpMethod == "POST") answer = GraphQL(text);
            else if (FileStreamPath().Match(path) is { Success: true } m && request.HttpMethod == "POST") answer = FileStream(m.Groups[3].Value, text);
            else { Respond(response, 404, "{}"); return; }
            lock (_gate) Log.Add($"{request.HttpMethod} {path} -> 200");
            Respond(response, 200, answer);
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
                        ["viewer"] = new JsonObject { ["id"] = "VXNlcjox", ["entity"] = Entity, ["username"] = Entity, ["flags"] = "{}",
                                                      ["teams"] = new JsonObject { ["edges"] = new JsonArray() } },
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
                            ["runID"] = "UnVuOjE=", ["uploadHeaders"] = new JsonArray($"{UploadHeader}:ok"), ["files"] = files,
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
                    ["historyLineCount"] = History.Count,
                },
                ["inserted"] = Upserts == 1,
            },
        });
    }

    private string FileStream(string run, string text)
    {
        var body = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException("file_stream body is not a JSON object");
        lock (_gate)
        {
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
                    if (History.TryGetValue(at, out var existing) && existing != lines[i]) Violations.Add($"history line {at} rewritten with other content");
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
        return "{\"exitcode\":null,\"limits\":{}}";
    }

    private void HandlePut(HttpListenerRequest request, string path, byte[] body, HttpListenerResponse response)
    {
        string name = Uri.UnescapeDataString(path["/upload/".Length..]);
        lock (_gate)
        {
            if (request.Headers["Authorization"] is not null) Violations.Add($"PUT {name} carried an Authorization header");
            if (!Created.Contains(name)) Violations.Add($"PUT {name} without CreateRunFiles");
            Put[name] = body;
            Log.Add($"PUT {name} -> 200");
        }
        Respond(response, 200, "");
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
