using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Spectre.Console;
using VaeKit.Serving;

namespace VaeKit.Cli.Serving;

/// <summary>
/// <c>vae serve --bench</c>: a bounded load test of a running <see cref="ServeHost"/> from the same process over
/// 127.0.0.1. Decode latency (p50, p99) and requests/s at 1, 4 and 16 concurrent clients, then a memory phase:
/// a few thousand more decodes, with the process's RSS and the tensors left alive read back from /api/stats.
/// Client and server share the machine's cores, so these are the numbers of a laptop demo, not of a fleet.
/// </summary>
internal static class ServeBench
{
    private static readonly int[] Clients = [1, 4, 16];

    /// <summary>Below this many requests per round, RSS moves with warm-up more than with leaks.</summary>
    private const int MinRequestsToJudgeRss = 1000;

    /// <summary>RSS may grow this much from the first memory round to the last (allocator slack on a busy machine).</summary>
    private const double MaxRssGrowth = 1.10;

    /// <returns>0, or 1 when tensors leaked or RSS grew more than 10 % over the memory rounds.</returns>
    public static async Task<int> Run(ServeHost host, IReadOnlyList<ServedModel> models, int requests, IAnsiConsole console)
    {
        var model = models[0];
        using var http = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromSeconds(60) };
        string decode = "api/runs/0/decode";
        console.MarkupLineInterpolated($"decoding {model.Label} (z {model.Latent}, {model.ImageSize} px) through {host.Address}, {requests} requests per level, {Environment.ProcessorCount} cores");

        await Load(http, decode, model.Latent, clients: 4, total: 100);   // warm-up: JIT, connection pool, libtorch's first calls
        var table = new Table().AddColumns("clients", "requests", "p50 ms", "p99 ms", "requests/s");
        foreach (int c in Clients)
        {
            var (latencies, seconds) = await Load(http, decode, model.Latent, c, requests);
            Array.Sort(latencies);
            table.AddRow($"{c}", $"{latencies.Length}", $"{Percentile(latencies, 0.50):F2}", $"{Percentile(latencies, 0.99):F2}", $"{latencies.Length / seconds:F0}");
        }
        console.Write(table);

        // Memory: three more rounds of the same size at 4 clients; RSS and tensors left alive after each. The first
        // round warms allocators and caches, so flatness is judged from the first reading to the last.
        var readings = new List<(long Requests, double RssMb, long Leaked)>();
        long done = 0;
        for (int part = 0; part < 3; part++)
        {
            await Load(http, decode, model.Latent, clients: 4, total: requests);
            done += requests;
            using var stats = JsonDocument.Parse(await http.GetStringAsync("api/stats"));
            readings.Add((done, stats.RootElement.GetProperty("rss_bytes").GetInt64() / 1048576.0, stats.RootElement.GetProperty("leaked_tensors").GetInt64()));
        }
        foreach (var (n, rss, leaked) in readings)
            console.MarkupLineInterpolated($"after {n,7} more decodes: RSS {rss,7:F1} MB, tensors left alive {leaked}");
        double growth = readings[^1].RssMb / readings[0].RssMb;
        bool judged = requests >= MinRequestsToJudgeRss;
        bool flat = readings[^1].Leaked == 0 && (!judged || growth < MaxRssGrowth);
        string verdict = readings[^1].Leaked > 0 ? "LEAKING TENSORS"
            : !judged ? $"no leak (too few requests to judge RSS; use --bench-requests {MinRequestsToJudgeRss} or more)"
            : flat ? "flat" : "GROWING";
        console.MarkupLineInterpolated(
            $"memory: RSS {growth:F3}× from {readings[0].Requests} to {readings[^1].Requests} decodes, {readings[^1].Leaked} tensors left alive — {verdict}");
        return flat ? ExitCodes.Ok : ExitCodes.Failure;
    }

    /// <summary><paramref name="total"/> decodes of random codes spread over <paramref name="clients"/> concurrent loops.</summary>
    private static async Task<(double[] LatenciesMs, double Seconds)> Load(HttpClient http, string path, int latent, int clients, int total)
    {
        var latencies = new double[total];
        int next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            var random = new Random(client);
            var z = new float[latent];
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                for (int d = 0; d < latent; d++) z[d] = (float)(random.NextDouble() * 4 - 2);
                long start = Stopwatch.GetTimestamp();
                using var response = await http.PostAsJsonAsync(path, new { z });
                response.EnsureSuccessStatusCode();
                await response.Content.ReadAsByteArrayAsync();
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }));
        return (latencies, clock.Elapsed.TotalSeconds);
    }

    private static double Percentile(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
}
