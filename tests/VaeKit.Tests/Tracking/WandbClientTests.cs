using System.Diagnostics;
using System.Text.Json.Nodes;
using SkiaSharp;
using VaeKit.Tracking.Wandb;

namespace VaeKit.Tests.Tracking;

/// <summary>
/// The W&amp;B client against the fake server without a model: the protocol, the spool, and faults. A "training loop"
/// logs rows and images the way <see cref="WandbListener"/> does, with intervals short enough for a test.
/// </summary>
public class WandbClientTests(Xunit.Abstractions.ITestOutputHelper log)
{
    internal const string Key = "vaekit_test_key_0123456789abcdefghijklmnopqrstuv";

    /// <summary>
    /// Short intervals so a test takes milliseconds. Every limit here is an upper bound on waiting that a healthy run
    /// never reaches (a finish returns as soon as everything arrived), so a loaded machine only makes tests slower, never
    /// red; the request timeout is the exception and only matters where a test makes the server hang.
    /// </summary>
    internal static readonly WandbTiming Fast = new()
    {
        TransmitInterval = TimeSpan.FromMilliseconds(50), HeartbeatInterval = TimeSpan.FromMilliseconds(150),
        RequestTimeout = TimeSpan.FromSeconds(20), FileStreamTimeout = TimeSpan.FromSeconds(20),
        MinBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(200), FinishTimeout = TimeSpan.FromSeconds(60),
    };

    /// <summary>How long a test waits for something that happens in milliseconds on an idle machine; only a real hang reaches it.</summary>
    internal static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    private static WandbSettings Settings(FakeWandbServer server, WandbTiming? timing = null) => new()
    {
        BaseUrl = server.BaseUrl, ApiKey = Key, Project = "vae-tests", Tags = ["test"], Timing = timing ?? Fast,
    };

    [Fact]
    public void Settings_come_from_flags_environment_and_netrc_and_never_print_the_key()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir[".netrc"], "machine example.org login a password other\nmachine api.wandb.ai\n  login user\n  password " + Key + "\ndefault login x password fallback\n");
        var env = new Dictionary<string, string> { ["HOME"] = dir.Path, ["WANDB_PROJECT"] = "env-project" };
        var settings = WandbSettings.Resolve(n => env.GetValueOrDefault(n), entity: "team");
        Assert.Equal(Key, settings.ApiKey);
        Assert.Equal("fallback", Netrc.Password(dir[".netrc"], "self-hosted.example"));
        Assert.Null(Netrc.Password(dir["no-such-netrc"], "api.wandb.ai"));
        Assert.Equal(("env-project", "team", WandbMode.Online), (settings.Project, settings.Entity, settings.Mode));
        Assert.DoesNotContain(Key, settings.ToString());
        Assert.Equal("https://wandb.ai/team/p/runs/abc", settings.RunUrl("team", "p", "abc"));

        env["WANDB_API_KEY"] = "from-env"; env["WANDB_MODE"] = "offline"; env["WANDB_BASE_URL"] = "http://localhost:8080/";
        settings = WandbSettings.Resolve(n => env.GetValueOrDefault(n), project: "flag-project");
        Assert.Equal(("from-env", "flag-project", WandbMode.Offline, "http://localhost:8080"), (settings.ApiKey, settings.Project, settings.Mode, settings.BaseUrl));
        env["WANDB_MODE"] = "sometimes";
        Assert.Throws<BadInputException>(() => WandbSettings.Resolve(n => env.GetValueOrDefault(n)));
    }

    [Fact]
    public void Non_finite_values_are_bare_tokens_and_config_keys_are_wrapped()
    {
        string line = WandbJson.Line([new("_step", 3L), new("a", double.NaN), new("b", double.PositiveInfinity), new("c", double.NegativeInfinity), new("d", 0.5)]);
        Assert.Equal("""{"_step":3,"a":NaN,"b":Infinity,"c":-Infinity,"d":0.5}""", line);
        Assert.Equal("""{"lr":{"value":0.001},"model":{"value":{"latent":16}}}""",
                     WandbJson.ConfigString(new JsonObject { ["lr"] = 0.001, ["model"] = new JsonObject { ["latent"] = 16 } }));
    }

    [Fact]
    public void The_spool_survives_a_torn_last_line_and_reads_back_in_byte_budgets()
    {
        using var dir = new TempDir();
        var info = new WandbSpoolInfo { Id = "abcd1234", Project = "p", DisplayName = "d" };
        using (var spool = WandbSpool.OpenOrCreate(dir.Path, () => info))
            for (int i = 0; i < 5; i++) spool.AppendLine($"{{\"_step\":{i},\"x\":\"{new string('a', 100)}\"}}");
        File.AppendAllText(Path.Combine(dir.Path, "history.jsonl"), "{\"_step\":5,\"x\":");   // killed mid-write
        using var reopened = WandbSpool.Open(dir.Path);
        Assert.Equal(5, reopened.LineCount);
        Assert.Equal("abcd1234", reopened.Info.Id);
        Assert.Equal(2, reopened.ReadLines(1, 10, maxBytes: 250).Count);     // whole lines within the budget
        Assert.Single(reopened.ReadLines(4, 10, maxBytes: 1));               // but always at least one
        reopened.AppendLine("{\"_step\":5}");
        Assert.Equal("{\"_step\":5}", reopened.ReadLines(5, 10, long.MaxValue).Single());
        Assert.Throws<BadInputException>(() => WandbSpool.Open(dir["elsewhere"]));
    }

    [Fact]
    public void A_run_sends_config_history_images_summary_and_complete()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "demo", new JsonObject { ["train"] = new JsonObject { ["learning_rate"] = 0.001 }, ["parameters"] = 1234 });
            FakeTraining(run, dir, steps: 12, stepsPerEpoch: 4, nanAt: 5);
            Assert.True(run.Finish(0));
            Assert.Contains(run.DrainMessages(), m => m.Contains($"{server.BaseUrl}/fake-entity/vae-tests/runs/{server.RunName}"));
        }

        Assert.Empty(server.Violations);
        Assert.Empty(server.ImageProblems());
        Assert.Equal(0.001, server.Config!["train"]!["learning_rate"]!.GetValue<double>());
        Assert.Equal(["test"], server.Tags);
        var rows = server.Rows();
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), rows.Select(r => r["_step"]!.GetValue<long>()));
        Assert.Contains("\"train/loss\":NaN", server.History[4]);   // step 5: written bare, as W&B expects
        Assert.Equal(3, rows.Count(r => r["images/samples"] is JsonObject));
        Assert.Equal("image-file", rows[3]["images/samples"]!["_type"]!.GetValue<string>());
        var summary = FakeWandbServer.ParseLine(server.Summary!);
        Assert.Equal(12, summary["_step"]!.GetValue<long>());
        Assert.Equal(0.5, summary["val/best_loss"]!.GetValue<double>());
        Assert.True(server.Complete);
        Assert.Equal(0, server.ExitCode);
    }

    [Fact]
    public void An_idle_run_sends_heartbeats()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using var run = WandbRun.Connect(Settings(server))!;
        run.Start(dir.Path, "idle", new JsonObject());
        run.Log(1, [new("train/loss", 2.0)]);
        run.Log(2, [new("train/loss", 1.0)]);   // step 1 is posted; then nothing for a while (a long validation pass, say)
        WaitFor(() => server.HistoryCount == 1 && server.Heartbeats >= 2);
        Assert.True(run.Finish(0));
        Assert.Equal(2, server.HistoryCount);
    }

    [Theory]
    [InlineData("500")]
    [InlineData("429")]
    [InlineData("refused")]
    [InlineData("hang")]
    public async Task Faults_never_block_training_and_every_row_arrives_exactly_once(string fault)
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        // While the server hangs, a request waits for as long as the test does: a tracker call that waited on the
        // network would not return until the server is released, which happens only after training went on.
        using var run = WandbRun.Connect(Settings(server, fault == "hang" ? Fast with { RequestTimeout = TimeSpan.FromMinutes(10), FileStreamTimeout = TimeSpan.FromMinutes(10) } : Fast))!;
        run.Start(dir.Path, "faulty", new JsonObject { ["seed"] = 1 });
        FakeTraining(run, dir, steps: 10, stepsPerEpoch: 10);
        WaitFor(() => server.HistoryCount == 9);   // step 10 stays open for values of the same step

        var faultStart = Stopwatch.StartNew();
        switch (fault)
        {
            case "500": server.FailNext(6, 500); break;
            case "429": server.FailNext(1, 429, TimeSpan.FromSeconds(1)); break;
            case "refused": server.StopListening(); break;
            case "hang": server.Hang = true; break;
        }
        // The sender has met the fault (not merely slept through it) while training goes on.
        var messages = new List<string>();
        var training = Task.Run(() => FakeTraining(run, dir, steps: 30, stepsPerEpoch: 10, firstStep: 11));
        WaitFor(() =>
        {
            messages.AddRange(run.DrainMessages());
            return fault switch
            {
                "hang" => server.Held > 0,
                "refused" => messages.Any(m => m.Contains("training goes on")),
                _ => server.Injected > 0,
            };
        });
        Assert.True(await Within(training), $"training was blocked during '{fault}'");
        if (fault == "hang") Assert.True(server.Hang, "the server was released before training finished");
        if (fault == "refused") server.StartListening();
        if (fault == "hang") server.Hang = false;

        Assert.True(run.Finish(0), string.Join("\n", server.Log.TakeLast(20)));
        log.WriteLine($"{fault}: slowest tracker call {(await training).TotalMilliseconds:F2} ms");
        if (fault == "429")
            Assert.True(faultStart.Elapsed >= TimeSpan.FromSeconds(1), "Retry-After was not honoured");   // a lower bound: load cannot break it
        if (fault is "500" or "429") Assert.Equal(fault == "500" ? 6 : 1, server.Injected);   // the fault really happened
        if (fault == "hang") Assert.True(server.Held > 0);

        Assert.Empty(server.Violations);
        Assert.Empty(server.ImageProblems());
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), server.Rows().Select(r => r["_step"]!.GetValue<long>()));
        Assert.True(server.Complete);
    }

    [Fact]
    public async Task A_server_that_hangs_from_the_start_does_not_hold_up_the_start()
    {
        using var server = new FakeWandbServer(Key) { Hang = true };
        using var dir = new TempDir();
        // The start gives up after StartTimeout; the requests themselves would wait ten minutes.
        var timing = Fast with { StartTimeout = TimeSpan.FromMilliseconds(500), RequestTimeout = TimeSpan.FromMinutes(10) };
        var starting = Task.Run(() =>
        {
            var r = WandbRun.Connect(Settings(server, timing))!;
            r.Start(dir.Path, "hung", new JsonObject { ["seed"] = 1 });
            return r;
        });
        Assert.True(await Within(starting), "the start waited for the hanging server");
        Assert.True(server.Hang, "the start only returned because the server was released");
        using var run = await starting;
        Assert.Contains(run.DrainMessages(), m => m.Contains("cannot check the API key now"));
        // The server holds requests (the sender's, at the latest): it hung rather than refused. Not asserted at once: on a
        // loaded machine the start can give up before the server has even read the request.
        WaitFor(() => server.Held > 0);

        var training = Task.Run(() => FakeTraining(run, dir, steps: 20, stepsPerEpoch: 10));
        Assert.True(await Within(training), "training was blocked by the hanging server");
        server.Hang = false;
        WaitFor(() => run.DrainMessages().Any(m => m.StartsWith("W&B run: http")));   // the URL, once the server answers
        Assert.True(run.Finish(0), string.Join("\n", server.Log.TakeLast(20)));
        Assert.Empty(server.Violations);
        Assert.Empty(server.ImageProblems());
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), server.Rows().Select(r => r["_step"]!.GetValue<long>()));
        Assert.True(server.Complete);
    }

    [Fact]
    public void When_the_server_stays_away_the_run_is_spooled_and_sync_sends_each_row_once()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        var timing = Fast with { FinishTimeout = TimeSpan.FromSeconds(1) };
        using (var run = WandbRun.Connect(Settings(server, timing))!)
        {
            run.Start(dir.Path, "away", new JsonObject { ["seed"] = 1 });
            FakeTraining(run, dir, steps: 8, stepsPerEpoch: 4);
            WaitFor(() => server.HistoryCount == 7 && Acknowledged(dir.Path) == 7);
            server.StopListening();
            FakeTraining(run, dir, steps: 12, stepsPerEpoch: 4, firstStep: 9);
            Assert.False(run.Finish(3));   // gives up after FinishTimeout; the rest stays in the spool
            Assert.Contains(run.DrainMessages(), m => m.Contains("vae wandb sync"));
        }
        Assert.Equal(7, server.HistoryCount);
        Assert.False(server.Complete);

        server.StartListening();
        var result = WandbSync.Sync(dir.Path, Settings(server, timing), Patience, _ => { });
        Assert.Equal((7L, 13L, 20L, true, (int?)3), (result.RowsOnServerBefore, result.RowsSent, result.RowsInSpool, result.Completed, result.ExitCode));
        Assert.Empty(server.Violations);
        Assert.Empty(server.ImageProblems());
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), server.Rows().Select(r => r["_step"]!.GetValue<long>()));
        Assert.True(server.Complete);
        Assert.Equal(3, server.ExitCode);

        int posts = server.FileStreamPosts, puts = server.Put.Count;
        var again = WandbSync.Sync(dir.Path, Settings(server, timing), Patience, _ => { });
        Assert.Equal(0, again.RowsSent);
        Assert.Equal(20, server.History.Count);
        Assert.Equal(puts, server.Put.Count);
        Assert.True(server.FileStreamPosts - posts <= 1, "a second sync only refreshes the summary");
    }

    [Fact]
    public void A_refused_key_is_bad_input_and_the_message_holds_no_key()
    {
        using var server = new FakeWandbServer("the-right-key-0123456789012345678901234567890");
        var e = Assert.Throws<BadInputException>(() => WandbRun.Connect(Settings(server)));
        Assert.Contains("refused the API key", e.Message);
        Assert.DoesNotContain(Key, e.Message);
        Assert.Equal(1, server.RefusedKeys);
    }

    [Fact]
    public void A_tracking_failure_is_reported_once_and_training_goes_on()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using var run = WandbRun.Connect(Settings(server))!;
        var messages = new List<string>();
        var listener = new WandbListener(run, messages.Add);
        listener.Start(new VaeKit.Training.RunStart("broken", dir.Path, "cpu", 1, 10,
            new VaeKit.Data.DatasetDescription
            {
                Source = "synthetic", Kind = "synthetic", ImageSize = 32, Channels = 3, TrainCount = 8, ValidationCount = 0, Decoded = 8,
                Skipped = 0, SkippedExamples = [], Fingerprint = "f", ValidationFraction = 0, FromCache = false,
            }, 4, 8, 0, false));
        VaeKit.Training.Metric[] numbers = [new(VaeKit.Training.MetricScope.Step, "loss", 1), new(VaeKit.Training.MetricScope.Step, "lr", 0.001)];
        listener.Log(new VaeKit.Training.MetricsRow(VaeKit.Training.MetricsRowKind.Train, 1, 1, numbers));
        // The grids are missing: logging the epoch fails, and must not throw into the training loop.
        listener.Log(new VaeKit.Training.MetricsRow(VaeKit.Training.MetricsRowKind.Epoch, 1, 1, [new(VaeKit.Training.MetricScope.EpochTrain, "loss", 1)])
        {
            Images = new Dictionary<string, string> { ["reconstruction"] = dir["missing.png"], ["samples"] = dir["missing2.png"] }, IsBest = true,
        });
        listener.Log(new VaeKit.Training.MetricsRow(VaeKit.Training.MetricsRowKind.Train, 2, 1, numbers));
        Assert.Single(messages, m => m.StartsWith("W&B: tracking stopped (FileNotFoundException"));
        Assert.DoesNotContain(messages, m => m.Contains(Key));
    }

    /// <summary>
    /// Logs steps [firstStep, firstStep + steps) like the listener (a grid pair at each epoch end, val/loss 0.5 at
    /// the first one); <paramref name="nanAt"/> logs a NaN loss. Returns the slowest tracker call.
    /// </summary>
    internal static TimeSpan FakeTraining(WandbRun run, TempDir dir, int steps, int stepsPerEpoch, int firstStep = 1, int? nanAt = null)
    {
        string png = dir["grid.png"];
        if (!File.Exists(png)) WritePng(png);
        var slowest = TimeSpan.Zero;
        var clock = new Stopwatch();
        for (int step = firstStep; step < firstStep + steps; step++)
        {
            Thread.Sleep(3);   // the step's compute
            clock.Restart();
            run.Log(step, [new("epoch", (step - 1) / stepsPerEpoch + 1), new("train/loss", step == nanAt ? double.NaN : 100.0 / step)]);
            if (step % stepsPerEpoch == 0)
            {
                run.Log(step, [new("val/loss", 0.5 + step), new("images/samples", run.Image("samples", png, step))]);
                if (step == stepsPerEpoch) run.SetSummary("val/best_loss", 0.5);
            }
            if (clock.Elapsed > slowest) slowest = clock.Elapsed;
        }
        return slowest;
    }

    internal static void WritePng(string path)
    {
        using var bitmap = new SKBitmap(16, 8);
        bitmap.Erase(SKColors.CornflowerBlue);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>
    /// History lines the client has seen acknowledged (run.json). Tests that cut the server off wait for this, not for
    /// the server's count: the server can have a post whose answer the client never got, which is then re-sent.
    /// </summary>
    internal static long Acknowledged(string runDirectory)
    {
        try { return JsonNode.Parse(File.ReadAllText(Path.Combine(runDirectory, "wandb", "run.json")))?["acknowledged"]?.GetValue<long>() ?? 0; }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { return 0; }   // being replaced right now
    }

    /// <summary>Whether <paramref name="task"/> ends within <see cref="Patience"/>.</summary>
    internal static async Task<bool> Within(Task task) => await Task.WhenAny(task, Task.Delay(Patience)) == task;

    /// <summary>Polls until <paramref name="condition"/> holds; fails only after <see cref="Patience"/> (a real hang).</summary>
    internal static void WaitFor(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, "timed out waiting for the fake server");
            Thread.Sleep(20);
        }
    }
}
