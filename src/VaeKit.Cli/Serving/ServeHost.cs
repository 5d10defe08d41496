using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using VaeKit.Serving;

namespace VaeKit.Cli.Serving;

/// <summary>Where and how <c>vae serve</c> listens.</summary>
public sealed record ServeOptions
{
    /// <summary>An IP address (or "localhost"); 127.0.0.1 keeps the server private to this machine.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 = any free port (tests, the benchmark).</summary>
    public int Port { get; init; } = 8080;

    public UploadLimits Limits { get; init; } = new();
}

/// <summary>
/// The HTTP side of <c>vae serve</c>: Kestrel with minimal APIs, one self-contained page (an embedded resource: no
/// CDN, no external script) and a small JSON/PNG API over <see cref="ServedModel"/>s, which it does not own.
/// Every error leaves as a 4xx (or, for a bug, a 500) with a JSON <c>{"error": "…"}</c> body, never a stack trace.
/// </summary>
/// <remarks>
/// API (run = index into GET /api/runs):
/// <list type="bullet">
/// <item>GET /api/runs → the runs, their latent size and ranked dimensions</item>
/// <item>POST /api/runs/{run}/decode {"z": [..]} → image/png</item>
/// <item>POST /api/runs/{run}/sample {"temperature": 1, "seed": 0} → {"z": [..]}</item>
/// <item>POST /api/runs/{run}/encode, body: an image file → {"z": [..], "reconstruction": "data:image/png;base64,…"}</item>
/// <item>POST /api/runs/{run}/interpolate {"a": [..], "b": [..], "steps": 8, "mode": "linear"|"slerp"} → image/png strip</item>
/// <item>GET /api/runs/{run}/examples/{k} → image/png, a validation image of that run</item>
/// <item>GET /api/stats → requests served, tensors leaked, process memory</item>
/// </list>
/// </remarks>
public sealed class ServeHost : IAsyncDisposable
{
    private WebApplication _app = null!;
    private long _requests;

    private ServeHost() { }

    /// <summary>The address the server listens on, with the real port when 0 was asked for.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Requests answered so far (all routes).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Completes when the host stops (Ctrl-C or SIGTERM through the console lifetime, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    public Task StopAsync() => _app.StopAsync();

    /// <summary>
    /// Starts listening. A taken port or an address that is not this machine's is a <see cref="BadInputException"/>.
    /// </summary>
    /// <param name="log">One line per unexpected server error (never sent to the client).</param>
    public static async Task<ServeHost> StartAsync(IReadOnlyList<ServedModel> models, ServeOptions options, TextWriter log)
    {
        if (models.Count == 0) throw new ArgumentException("no models to serve", nameof(models));
        var ip = ParseHost(options.Host);
        if (options.Port is < 0 or > 65535) throw new BadInputException($"--port must be between 0 and 65535 (got {options.Port}).");

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(ip, options.Port);
            k.Limits.MaxRequestBodySize = options.Limits.MaxBytes;
            k.AddServerHeader = false;
        });

        var app = builder.Build();
        var self = new ServeHost { _app = app };
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref self._requests);
            try
            {
                await next(context);
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                var (status, message) = Describe(e, options.Limits);
                if (status >= 500) log.WriteLine($"vae serve: {context.Request.Method} {context.Request.Path}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
                if (status == 499) return;   // the client went away; nobody reads an answer
                context.Response.Clear();
                await WriteError(context, status, message);
            }
        });
        app.UseStatusCodePages(async status =>
            await WriteError(status.HttpContext, status.HttpContext.Response.StatusCode,
                             status.HttpContext.Response.StatusCode == 404 ? "No such page or API route." : "Method or request not allowed here."));
        self.Map(models, options.Limits);

        try
        {
            await app.StartAsync();
        }
        catch (IOException e) when (e.InnerException is SocketException || e.GetType().Name == "AddressInUseException" || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            await app.DisposeAsync();
            throw new BadInputException($"Cannot listen on {options.Host}:{options.Port}: {e.Message.Split('\n')[0]} Pick another --port, or stop what uses it.", e);
        }
        catch (SocketException e)
        {
            await app.DisposeAsync();
            throw new BadInputException($"Cannot listen on {options.Host}:{options.Port}: {e.Message} Check --host (an address of this machine).", e);
        }
        string bound = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        self.Address = new Uri(bound.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "[::1]"));
        return self;
    }

    private static IPAddress ParseHost(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        if (IPAddress.TryParse(host, out var ip)) return ip;
        throw new BadInputException($"--host must be an IP address of this machine (127.0.0.1, 0.0.0.0 for every interface, ::1) or localhost (got '{host}').");
    }

    /// <summary>The status and message a client gets for an exception; nothing of the stack.</summary>
    private static (int Status, string Message) Describe(Exception e, UploadLimits limits) => e switch
    {
        HttpError h => (h.Status, h.Message),
        BadInputException b => (400, b.Message),
        BadHttpRequestException { StatusCode: 413 } => (413, $"The request is larger than the limit of {limits.MaxBytes:N0} bytes."),
        BadHttpRequestException h => (h.StatusCode, h.Message),
        JsonException j => (400, $"The request body is not the JSON this route takes ({j.Message.Split('\n')[0]})."),
        OperationCanceledException => (499, "cancelled"),
        _ => (500, $"Internal error ({e.GetType().Name}); the server's console has a line about it."),
    };

    private static Task WriteError(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new { error = message }, Json.Compact));
    }

    /// <summary>A client error with its status code (404 for a run that is not there, 415, …).</summary>
    private sealed class HttpError(int status, string message) : Exception(message)
    {
        public int Status { get; } = status;
    }

    private sealed record DecodeRequest(float[]? Z);
    private sealed record SampleRequest(double Temperature = 1, long Seed = 0);
    private sealed record InterpolateRequest(float[]? A, float[]? B, int Steps = 8, string Mode = "linear");

    private void Map(IReadOnlyList<ServedModel> models, UploadLimits limits)
    {
        var app = _app;
        string page = ServePage.Html;
        app.MapGet("/", (HttpContext context) =>
        {
            // The page needs nothing from anywhere else; the policy makes sure of it.
            context.Response.Headers.ContentSecurityPolicy =
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'";
            return Results.Content(page, "text/html; charset=utf-8");
        });

        app.MapGet("/api/runs", () => Results.Json(new
        {
            shared_latent = models.Select(m => m.Latent).Distinct().Count() == 1,
            runs = models.Select((m, i) => new
            {
                id = i, label = m.Label, run = m.RunPath, checkpoint = Path.GetFileName(m.CheckpointPath), step = m.Step,
                family = m.Family, latent = m.Latent, image_size = m.ImageSize, channels = m.Channels,
                score = m.ScoreName, ranking_note = m.RankingNote, examples = m.Examples.Count,
                // What the family refuses (VaeModel.Unsupported), so the page can say so instead of failing.
                cannot_sample = m.Unsupported(Models.ModelOperation.Sample),
                cannot_interpolate = m.Unsupported(Models.ModelOperation.Interpolate),
                dimensions = m.Ranked.Select(d => new { index = d.Index, score = double.IsFinite(d.Score) ? d.Score : (double?)null, mean = d.Mean, std = d.Std }),
            }),
        }, Json.Compact));

        app.MapPost("/api/runs/{run}/decode", async (string run, HttpContext context) =>
        {
            var model = Find(models, run);
            var request = await ReadJson<DecodeRequest>(context);
            return Results.Bytes(await model.DecodeAsync(request.Z ?? [], context.RequestAborted), "image/png");
        });

        app.MapPost("/api/runs/{run}/sample", async (string run, HttpContext context) =>
        {
            var model = Find(models, run);
            var request = await ReadJson<SampleRequest>(context);
            return Results.Json(new { z = await model.SampleCodeAsync(request.Temperature, request.Seed, context.RequestAborted) }, Json.Compact);
        });

        app.MapPost("/api/runs/{run}/encode", async (string run, HttpContext context) =>
        {
            var model = Find(models, run);
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);   // Kestrel stops it at the size limit (413)
            var pixels = ServedImages.Decode(body.ToArray(), model.ImageSize, model.Channels, limits);
            var (code, reconstruction) = await model.EncodeAsync(pixels, context.RequestAborted);
            return Results.Json(new { z = code, reconstruction = "data:image/png;base64," + Convert.ToBase64String(reconstruction) }, Json.Compact);
        });

        app.MapPost("/api/runs/{run}/interpolate", async (string run, HttpContext context) =>
        {
            var model = Find(models, run);
            var request = await ReadJson<InterpolateRequest>(context);
            bool spherical = request.Mode switch
            {
                "linear" => false,
                "slerp" => true,
                _ => throw new BadInputException($"mode must be linear or slerp (got '{request.Mode}')."),
            };
            return Results.Bytes(await model.InterpolateAsync(request.A ?? [], request.B ?? [], request.Steps, spherical, context.RequestAborted), "image/png");
        });

        app.MapGet("/api/runs/{run}/examples/{k}", (string run, string k) =>
        {
            var model = Find(models, run);
            if (!int.TryParse(k, out int index) || index < 0 || index >= model.Examples.Count)
                throw new HttpError(404, $"{model.Label} has {model.Examples.Count} example images (0 … {model.Examples.Count - 1}); '{k}' is not one.");
            return Results.Bytes(model.Examples[index], "image/png");
        });

        app.MapGet("/api/stats", (HttpContext context) =>
        {
            using var process = Process.GetCurrentProcess();
            return Results.Json(new
            {
                requests = Requests,
                leaked_tensors = ServedModel.LeakedTensors,
                rss_bytes = process.WorkingSet64,
                managed_bytes = GC.GetTotalMemory(false),
            }, Json.Compact);
        });
    }

    private static ServedModel Find(IReadOnlyList<ServedModel> models, string run) =>
        int.TryParse(run, out int i) && i >= 0 && i < models.Count
            ? models[i]
            : throw new HttpError(404, $"No run '{run}'; this server has runs 0 … {models.Count - 1} (GET /api/runs).");

    private static async Task<T> ReadJson<T>(HttpContext context) where T : class
    {
        if (context.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            throw new HttpError(415, "Send the request as JSON (Content-Type: application/json).");
        return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, Json.Compact, context.RequestAborted)
               ?? throw new BadInputException("The request body is empty JSON (null).");
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
