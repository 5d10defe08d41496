using System.Diagnostics;
using System.Text.Json.Nodes;
using VaeKit.Tracking.Wandb;
using static VaeKit.Tests.Tracking.WandbClientTests;

namespace VaeKit.Tests.Tracking;

/// <summary>
/// The W&amp;B client against a fake that behaves like the hosted service where it differs from the happy path
/// (docs/wandb-contract.md): refused storage uploads, UI tags, the _wandb config block, 409 on UpsertBucket, slow
/// file_stream answers, the Stop button, oversized lines and requests, and a lagging historyLineCount. Each test ends
/// with nothing lost: the spool holds every row and image, and <c>vae wandb sync</c> completes what the run could not.
/// </summary>
public class WandbServiceTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static WandbSettings Settings(FakeWandbServer server, WandbTiming? timing = null) => new()
    {
        BaseUrl = server.BaseUrl, ApiKey = Key, Project = "vae-tests", Timing = timing ?? Fast,
    };

    private static List<string> Drain(WandbRun run, List<string>? into = null)
    {
        into ??= [];
        into.AddRange(run.DrainMessages());
        return into;
    }

    private static IEnumerable<long> Steps(FakeWandbServer server) => server.Rows().Select(r => r["_step"]!.GetValue<long>());

    // Defect 1: a storage 403 (expired or mismatched signature) or a refused CreateRunFiles is a failed upload, not a refused key.
    [Theory]
    [InlineData("PUT", 403)]
    [InlineData("CreateRunFiles", 400)]
    [InlineData("CreateRunFiles", 403)]
    public void A_refused_upload_is_logged_and_skipped_while_metrics_keep_streaming_and_sync_completes_it(string route, int status)
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        var messages = new List<string>();
        server.FailNextOn(route, 1, status, route == "PUT"
            ? "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code></Error>"
            : """{"errors":[{"message":"upload refused for this run"}]}""");
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "upload", new JsonObject { ["seed"] = 1 });
            FakeTraining(run, dir, steps: 4, stepsPerEpoch: 4);          // one image, refused
            WaitFor(() => server.Injected > 0 || server.Log.Any(l => l.Contains("(injected)")));
            FakeTraining(run, dir, steps: 8, stepsPerEpoch: 4, firstStep: 5);
            WaitFor(() => server.HistoryCount >= 11);                     // rows after the refusal still stream
            Assert.False(run.Finish(0));                                   // one image is not on the server
            Drain(run, messages);
        }
        foreach (var m in messages) log.WriteLine(m);
        Assert.DoesNotContain(messages, m => m.Contains("refused the API key") || m.Contains("giving up"));
        Assert.Contains(messages, m => m.Contains("upload", StringComparison.OrdinalIgnoreCase) && m.Contains("failed", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), Steps(server));
        Assert.True(server.Complete);
        Assert.NotEmpty(server.ImageProblems());                          // the refused image is missing on the server

        // Nothing lost: the spool kept the image and sync uploads it.
        var result = WandbSync.Sync(dir.Path, Settings(server), TimeSpan.FromSeconds(60), _ => { });
        Assert.True(result.Completed);
        Assert.Empty(server.ImageProblems());
        Assert.Empty(server.Violations);
    }

    // Defect 2: tags null when empty, so a resume or a sync never clears tags added on the run page.
    [Fact]
    public void Resume_and_sync_keep_tags_added_in_the_web_ui()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "tags", new JsonObject());
            FakeTraining(run, dir, steps: 3, stepsPerEpoch: 10);
            Assert.True(run.Finish(0));
        }
        server.Tags.Add("picked-in-ui");
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "tags", new JsonObject());
            FakeTraining(run, dir, steps: 3, stepsPerEpoch: 10, firstStep: 4);
            Assert.True(run.Finish(0));
        }
        WandbSync.Sync(dir.Path, Settings(server), TimeSpan.FromSeconds(60), _ => { });

        Assert.Equal(["picked-in-ui"], server.Tags);
        var upserts = server.GraphQLCalls("UpsertBucket");
        Assert.True(upserts.Count >= 3);                                             // start, resume, sync
        Assert.All(upserts, u => Assert.True(u.Variables!.ContainsKey("tags") && u.Variables["tags"] is null, u.Body));
    }

    // Defect 3: the _wandb block the official SDK needs, client info, and program / git commit / repo.
    [FactRequiring(Package.Git)]
    public void The_config_has_a_wandb_block_and_the_run_names_its_program_commit_and_repo()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        string code = dir["code"];
        Git(code, "init", "-q");
        Git(code, "remote", "add", "origin", "https://someone:s3cret-token@example.com/team/vae-project.git");
        File.WriteAllText(Path.Combine(code, "train.sh"), "vae train\n");
        Git(code, "add", "train.sh");
        Git(code, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first");
        string head = Git(code, "rev-parse", "HEAD").Trim();

        using (var run = WandbRun.Connect(Settings(server) with { CodeDirectory = code })!)
        {
            run.Start(dir["run"], "wandb-block", new JsonObject { ["seed"] = 3 });
            FakeTraining(run, dir, steps: 2, stepsPerEpoch: 10);
            Assert.True(run.Finish(0));
        }
        Assert.True(server.LooksStarted, server.Config?.ToJsonString());
        var wandb = server.Config!["_wandb"]!;
        Assert.False(string.IsNullOrWhiteSpace(wandb["cli_version"]?.GetValue<string>()));
        Assert.Contains(".NET", wandb["runtime"]?.GetValue<string>());
        Assert.Equal(3, server.Config["seed"]!.GetValue<int>());
        Assert.Equal("vae", server.Program);
        Assert.Equal(head, server.Commit);
        Assert.Equal("https://example.com/team/vae-project.git", server.Repo);   // the password never leaves the machine
        Assert.DoesNotContain("s3cret", string.Join("\n", server.Requests.Select(r => r.Body)));
        Assert.DoesNotContain("s3cret", File.ReadAllText(Path.Combine(dir["run"], "wandb", "run.json")));
        Assert.Empty(server.Violations);
    }

    // Defect 4: 409 on UpsertBucket is retried; the server's error text reaches the user.
    [Fact]
    public void A_409_on_upsert_is_retried_and_the_run_goes_on()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        server.FailNextOn("UpsertBucket", 2, 409, """{"errors":[{"message":"concurrent update of run","path":["upsertBucket"]}]}""");
        using var run = WandbRun.Connect(Settings(server))!;
        run.Start(dir.Path, "conflict", new JsonObject());
        FakeTraining(run, dir, steps: 5, stepsPerEpoch: 10);
        Assert.True(run.Finish(0), string.Join("\n", Drain(run)));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => (long)i), Steps(server));
        Assert.True(server.Complete);
        Assert.True(server.GraphQLCalls("UpsertBucket").Count >= 3);               // two conflicts, then the run was created
    }

    [Fact]
    public void A_persistent_409_says_what_the_server_said_and_the_spool_keeps_the_run()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        server.FailNextOn("UpsertBucket", 100, 409, """{"errors":[{"message":"run was previously created and deleted","path":["upsertBucket"]}]}""");
        var messages = new List<string>();
        using (var run = WandbRun.Connect(Settings(server, Fast with { ConflictRetries = 3 }))!)
        {
            run.Start(dir.Path, "deleted", new JsonObject());
            FakeTraining(run, dir, steps: 3, stepsPerEpoch: 10);
            WaitFor(() => Drain(run, messages).Any(m => m.Contains("previously created and deleted")));
            run.Finish(0);
            Drain(run, messages);
        }
        foreach (var m in messages) log.WriteLine(m);
        Assert.Contains(messages, m => m.Contains("HTTP 409") && m.Contains("run was previously created and deleted"));
        using var spool = WandbSpool.Open(Path.Combine(dir.Path, "wandb"));
        Assert.Equal(3, spool.LineCount);
    }

    // Defect 5a: file_stream waits for a slow server (official: 180 s) instead of posting the same lines again.
    [Fact]
    public void A_slow_file_stream_answer_is_waited_for_not_posted_twice()
    {
        using var server = new FakeWandbServer(Key) { FileStreamDelay = TimeSpan.FromSeconds(1.5) };
        using var dir = new TempDir();
        // GraphQL's timeout is shorter than the delay: a client that used it for file_stream (as VaeKit did) posts twice.
        var timing = Fast with { RequestTimeout = TimeSpan.FromSeconds(1), FileStreamTimeout = TimeSpan.FromSeconds(120) };
        using var run = WandbRun.Connect(Settings(server, timing))!;
        run.Start(dir.Path, "slow", new JsonObject());
        FakeTraining(run, dir, steps: 6, stepsPerEpoch: 10);
        Assert.True(run.Finish(0), string.Join("\n", Drain(run)));
        Assert.Equal(0, server.ResentLines);
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), Steps(server));
        Assert.Empty(server.Violations);
    }

    // Defect 5b: {"stopped": true} (the Stop button) becomes a stop request the training run can observe.
    [Fact]
    public void The_stop_button_on_the_run_page_becomes_a_stop_request_for_training()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using var run = WandbRun.Connect(Settings(server))!;
        var listener = new WandbListener(run);
        run.Start(dir.Path, "stop-me", new JsonObject());
        FakeTraining(run, dir, steps: 3, stepsPerEpoch: 10);
        Assert.False(run.StopRequested.IsCancellationRequested);
        server.Stopped = true;
        FakeTraining(run, dir, steps: 3, stepsPerEpoch: 10, firstStep: 4);
        var messages = new List<string>();
        WaitFor(() => run.StopRequested.IsCancellationRequested);
        Assert.True(listener.StopRequested.IsCancellationRequested);
        Assert.Contains(Drain(run, messages), m => m.Contains("stopped from the run page"));
        Assert.True(run.Finish(130));                                       // the interrupted run still finishes on W&B
        Assert.True(server.Complete);
        Assert.Equal(130, server.ExitCode);
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), Steps(server));
    }

    // Defect 5c: a row over the server's per-line limit is trimmed (largest values left out) with a warning; the rest streams.
    [Fact]
    public void An_oversized_row_is_trimmed_with_a_warning_and_every_step_arrives()
    {
        using var server = new FakeWandbServer(Key) { MaxLineBytes = 4096 };
        using var dir = new TempDir();
        using var run = WandbRun.Connect(Settings(server) with { MaxLineBytes = 4096 })!;
        run.Start(dir.Path, "big-row", new JsonObject());
        for (int step = 1; step <= 5; step++)
        {
            run.Log(step, [new("train/loss", 1.0 / step)]);
            if (step == 3) run.Log(step, [new("debug/dump", new string('x', 10_000))]);
        }
        bool finished = run.Finish(0);
        var messages = Drain(run);
        Assert.True(finished, string.Join("\n", messages));
        Assert.Empty(server.Violations);
        Assert.Equal(Enumerable.Range(1, 5).Select(i => (long)i), Steps(server));
        var row3 = server.Rows()[2];
        Assert.NotNull(row3["train/loss"]);
        Assert.Null(row3["debug/dump"]);
        Assert.Contains(messages, m => m.Contains("debug/dump") && m.Contains("4096"));
    }

    // 413: the post is split; nothing is lost.
    [Fact]
    public void A_413_splits_the_post_and_every_row_arrives_once()
    {
        using var server = new FakeWandbServer(Key) { MaxRequestBytes = 3000 };
        using var dir = new TempDir();
        using var run = WandbRun.Connect(Settings(server))!;
        run.Start(dir.Path, "too-large", new JsonObject());
        server.StopListening();                                            // rows pile up in the spool
        FakeTraining(run, dir, steps: 40, stepsPerEpoch: 100);
        server.StartListening();
        Assert.True(run.Finish(0), string.Join("\n", Drain(run)) + "\n" + string.Join("\n", server.Log.TakeLast(20)));
        Assert.Contains(server.Log, l => l.Contains("-> 413"));
        Assert.Empty(server.Violations);
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), Steps(server));
        Assert.Equal(0, server.ResentLines);
    }

    // Defect 6: historyLineCount lags on the hosted service; sync and resume neither re-send nor skip.
    [Fact]
    public void Sync_with_a_lagging_history_count_sends_each_row_once()
    {
        using var server = new FakeWandbServer(Key) { HistoryLag = 5 };
        using var dir = new TempDir();
        var timing = Fast with { FinishTimeout = TimeSpan.FromSeconds(1) };
        using (var run = WandbRun.Connect(Settings(server, timing))!)
        {
            run.Start(dir.Path, "lag", new JsonObject());
            FakeTraining(run, dir, steps: 8, stepsPerEpoch: 4);
            WaitFor(() => server.HistoryCount == 7 && Acknowledged(dir.Path) == 7);
            server.StopListening();
            FakeTraining(run, dir, steps: 12, stepsPerEpoch: 4, firstStep: 9);
            Assert.False(run.Finish(0));
        }
        server.StartListening();
        var first = WandbSync.Sync(dir.Path, Settings(server), TimeSpan.FromSeconds(60), _ => { });
        Assert.Equal((7L, 13L, 20L), (first.RowsOnServerBefore, first.RowsSent, first.RowsInSpool));
        var again = WandbSync.Sync(dir.Path, Settings(server), TimeSpan.FromSeconds(60), _ => { });
        Assert.Equal(0, again.RowsSent);
        Assert.Equal(0, server.ResentLines);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), Steps(server));
        Assert.Empty(server.Violations);
    }

    [Fact]
    public void Resume_with_a_lagging_history_count_continues_after_the_last_row()
    {
        using var server = new FakeWandbServer(Key) { HistoryLag = 4 };
        using var dir = new TempDir();
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "resume", new JsonObject());
            FakeTraining(run, dir, steps: 10, stepsPerEpoch: 5);
            Assert.True(run.Finish(1));
        }
        using (var run = WandbRun.Connect(Settings(server))!)
        {
            run.Start(dir.Path, "resume", new JsonObject());
            FakeTraining(run, dir, steps: 10, stepsPerEpoch: 5, firstStep: 11);
            Assert.True(run.Finish(0));
        }
        Assert.Equal(0, server.ResentLines);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), Steps(server));
        Assert.Empty(server.Violations);
        Assert.Empty(server.ImageProblems());
        Assert.Equal(0, server.ExitCode);
    }


    internal static string Git(string directory, params string[] args)
    {
        Directory.CreateDirectory(directory);
        var start = new ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var git = Process.Start(start)!;
        string output = git.StandardOutput.ReadToEnd();
        string error = git.StandardError.ReadToEnd();
        git.WaitForExit();
        Assert.True(git.ExitCode == 0, $"git {string.Join(' ', args)}: {error}");
        return output;
    }
}
