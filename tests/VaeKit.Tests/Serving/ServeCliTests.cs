using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Cli;
using VaeKit.Serving;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Serving;

/// <summary><c>vae serve</c> as a command: what it serves from a sweep, its start-up errors, Ctrl-C, the load test.</summary>
[Collection("serve")]
public class ServeCliTests(ServeFixture fx)
{
    /// <summary>A sweep directory as <c>vae sweep</c> leaves it, made of copies of the fixture's runs, its summary naming the runs where they were first written.</summary>
    private string MakeSweep(TempDir dir, bool withSummary = true)
    {
        string sweep = dir["sweeps/demo"];
        var rows = new JsonArray();
        foreach (var (source, name, label, status) in new[] { (fx.Vae8, "kl-1", "β 1", "completed"), (fx.Ae8, "ae", "AE", "completed"), (fx.Vae4, "kl-10", "β 10", "diverged") })
        {
            CopyDirectory(source, Path.Combine(sweep, "runs", name));
            rows.Add(new JsonObject { ["label"] = label, ["run"] = $"/somewhere/else/sweeps/demo/runs/{name}", ["status"] = status });
        }
        if (withSummary)
            File.WriteAllText(Path.Combine(sweep, "summary.json"), new JsonObject { ["name"] = "demo", ["rows"] = rows }.ToJsonString());
        return sweep;
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [Fact]
    public void A_sweep_serves_its_finished_runs_under_their_labels_even_after_a_move()
    {
        using var dir = new TempDir();
        string sweep = MakeSweep(dir);
        var runs = ServedRuns.Resolve([], sweep);
        Assert.Equal(["β 1", "AE"], runs.Select(r => r.Label));   // the diverged run is left out
        Assert.Equal([Path.Combine(sweep, "runs", "kl-1"), Path.Combine(sweep, "runs", "ae")], runs.Select(r => r.Directory));

        // Before the summary exists (a sweep still running): every run with a checkpoint, by directory name.
        File.Delete(Path.Combine(sweep, "summary.json"));
        Assert.Equal(["ae", "kl-1", "kl-10"], ServedRuns.Resolve([], sweep).Select(r => r.Label));
    }

    public static TheoryData<string[], string> StartupErrors => new()
    {
        { ["serve"], "Nothing to serve" },
        { ["serve", "--run", "/no/such/run"], "No run directory" },
        { ["serve", "--sweep", "/no/such/sweep"], "No sweep directory" },
        { ["serve", "--run", "RUN", "--sweep", "RUN"], "not both" },
        { ["serve", "--run", "RUN", "--host", "example.org"], "--host must be an IP address" },
        { ["serve", "--run", "RUN", "--checkpoint", "middle"], "best or last" },
        { ["serve", "--run", "RUN", "--port", "70000"], "--port" },
    };

    [Theory]
    [MemberData(nameof(StartupErrors))]
    public void Start_up_errors_are_one_line_and_exit_2(string[] args, string hint)
    {
        var (exit, _, error) = CliRunner.Run([.. args.Select(a => a == "RUN" ? fx.Vae8 : a)]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains(hint, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void A_port_in_use_is_reported_before_any_model_is_loaded()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var (exit, output, error) = CliRunner.Run("serve", "--run", fx.Vae8, "--port", $"{port}");
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.Contains($"Port {port} on 127.0.0.1 is in use", error);
        Assert.DoesNotContain("loading", output);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Ctrl_c_stops_the_server_with_exit_0()
    {
        using var dir = new TempDir();
        string sweep = MakeSweep(dir);
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        using var vae = VaeProcess.Start(["serve", "--sweep", sweep, "--port", $"{port}"]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromMinutes(1) };
        string? runs = null;
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); runs is null && clock.Elapsed < TimeSpan.FromMinutes(2);)
        {
            try { runs = await http.GetStringAsync("api/runs"); }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { await Task.Delay(200); }   // not listening yet
        }
        Assert.NotNull(runs);
        using (var doc = JsonDocument.Parse(runs))
            Assert.Equal(["β 1", "AE"], doc.RootElement.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("label").GetString()));

        var (exit, output, error) = await vae.Interrupt();
        Assert.True(exit == ExitCodes.Ok, output + error);
        Assert.Contains("serving 2 run(s) at http://127.0.0.1:", output);
        Assert.Contains("stopped", output);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void The_load_test_reports_latency_throughput_and_memory()
    {
        var (exit, output, error) = CliRunner.Run("serve", "--run", fx.Vae8, "--bench", "--bench-requests", "20");
        Assert.True(exit == 0, output + error);
        foreach (var column in new[] { "clients", "p50 ms", "p99 ms", "requests/s" }) Assert.Contains(column, output);
        Assert.Matches(@"│ 16\s+│ 20\s+│", output);
        Assert.Contains("after      60 more decodes", output);
        Assert.Contains("0 tensors left alive", output);
    }
}
