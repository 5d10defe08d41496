using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using VaeKit.Tracking.Wandb;
using static VaeKit.Tests.Tracking.WandbClientTests;

namespace VaeKit.Tests.Tracking;

/// <summary>
/// VaeKit's requests, as the fake server recorded them, against docs/wandb-contract.md: the request shapes the official
/// client (wandb/wandb core/) sends for a run like ours. Section numbers refer to that document. The fake only records
/// here; what is checked is written down in the contract, not taken from the fake.
/// </summary>
public partial class WandbContractTests
{
    private static readonly string BasicAuth = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("api:" + Key));

    /// <summary>One representative run: config, rows with a NaN, two epochs with images, a summary value, tags, finish.</summary>
    private static (FakeWandbServer Server, TempDir Dir) RecordRun(IReadOnlyList<string> tags)
    {
        var server = new FakeWandbServer(Key);
        var dir = new TempDir();
        using var run = WandbRun.Connect(new WandbSettings
        {
            BaseUrl = server.BaseUrl, ApiKey = Key, Project = "contract", Tags = tags, Timing = Fast, DisplayName = "contract-run",
        })!;
        run.Start(dir.Path, "contract", new JsonObject { ["train"] = new JsonObject { ["learning_rate"] = 0.001 } });
        FakeTraining(run, dir, steps: 8, stepsPerEpoch: 4, nanAt: 2);
        run.SetSummary("parameters", 1234);
        Assert.True(run.Finish(0));
        return (server, dir);
    }

    // §2 (UpsertBucket variables and their GraphQL types), §1 (auth), §3 (config and _wandb)
    [Fact]
    public void UpsertBucket_declares_and_sends_the_official_variables()
    {
        var (server, dir) = RecordRun(["vae", "contract"]);
        using var _s = server;
        using var _d = dir;
        var upsert = server.GraphQLCalls("UpsertBucket")[0];
        var payload = JsonNode.Parse(upsert.Body)!.AsObject();
        Assert.Equal(["operationName", "query", "variables"], payload.Select(p => p.Key).Order());
        Assert.Equal("UpsertBucket", payload["operationName"]!.GetValue<string>());

        var declared = Declarations(payload["query"]!.GetValue<string>());
        var expected = new Dictionary<string, string>
        {
            ["id"] = "String", ["name"] = "String", ["project"] = "String", ["entity"] = "String", ["groupName"] = "String",
            ["description"] = "String", ["displayName"] = "String", ["notes"] = "String", ["commit"] = "String",
            ["config"] = "JSONString", ["host"] = "String", ["debug"] = "Boolean", ["program"] = "String", ["repo"] = "String",
            ["jobType"] = "String", ["state"] = "String", ["sweep"] = "String", ["tags"] = "[String!]", ["summaryMetrics"] = "JSONString",
        };
        Assert.Equal(expected.OrderBy(p => p.Key), declared.OrderBy(p => p.Key));
        foreach (var field in new[] { "historyLineCount", "inserted", "project", "entity" })
            Assert.Contains(field, payload["query"]!.GetValue<string>());

        var v = upsert.Variables!;
        Assert.Equal(expected.Keys.Order(), v.Select(p => p.Key).Order());            // every variable present, null when unset
        Assert.Matches("^[a-z0-9]{8}$", v["name"]!.GetValue<string>());
        Assert.Equal("contract", v["project"]!.GetValue<string>());
        Assert.Null(v["entity"]);                                                     // the key's default entity
        Assert.Equal("contract-run", v["displayName"]!.GetValue<string>());
        Assert.Equal("train", v["jobType"]!.GetValue<string>());
        Assert.Equal("vae", v["program"]!.GetValue<string>());
        Assert.Equal(["vae", "contract"], v["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        foreach (var unset in new[] { "id", "groupName", "description", "notes", "debug", "state", "sweep", "summaryMetrics" })
            Assert.Null(v[unset]);

        // config: a JSON string of {key: {"value": v}}, with a _wandb block whose "t" the official resume looks for.
        Assert.Equal(JsonValueKind.String, v["config"]!.GetValueKind());
        var config = JsonNode.Parse(v["config"]!.GetValue<string>())!.AsObject();
        Assert.All(config, p => Assert.True(p.Value is JsonObject o && o.Count == 1 && o.ContainsKey("value"), p.Key));
        Assert.Equal(0.001, config["train"]!["value"]!["learning_rate"]!.GetValue<double>());
        var wandb = config["_wandb"]!["value"]!;
        Assert.IsType<JsonObject>(wandb["t"]);
        Assert.IsType<JsonArray>(wandb["m"]);
        Assert.StartsWith("vaekit ", wandb["cli_version"]!.GetValue<string>());

        // A later upsert (the sync here) sends tags only once: null leaves tags edited on the run page alone.
        WandbSync.Sync(dir.Path, new WandbSettings { BaseUrl = server.BaseUrl, ApiKey = Key, Timing = Fast }, Patience, _ => { });
        Assert.All(server.GraphQLCalls("UpsertBucket").Skip(1), u => Assert.Null(u.Variables!["tags"]));
    }

    // §1 auth, §4 CreateRunFiles and the signed-URL PUT, §6 image values in history
    [Fact]
    public void Images_go_through_CreateRunFiles_and_a_PUT_with_the_upload_headers_and_no_credentials()
    {
        var (server, dir) = RecordRun([]);
        using var _s = server;
        using var _d = dir;
        var calls = server.Requests;
        Assert.All(calls.Where(r => r.Path == "/graphql" || r.Path.EndsWith("/file_stream")),
                   r => Assert.Equal(BasicAuth, r.Headers.GetValueOrDefault("Authorization")));
        var puts = calls.Where(r => r.Method == "PUT").ToList();
        Assert.NotEmpty(puts);
        Assert.All(puts, p => Assert.False(p.Headers.ContainsKey("Authorization"), "storage gets no W&B credentials"));

        var create = server.GraphQLCalls("CreateRunFiles");
        Assert.NotEmpty(create);
        var query = JsonNode.Parse(create[0].Body)!["query"]!.GetValue<string>();
        Assert.Equal(new Dictionary<string, string> { ["entity"] = "String!", ["project"] = "String!", ["run"] = "String!", ["files"] = "[String!]!" }
                         .OrderBy(p => p.Key), Declarations(query).OrderBy(p => p.Key));
        foreach (var field in new[] { "uploadHeaders", "uploadUrl", "name" }) Assert.Contains(field, query);
        var run = server.GraphQLCalls("UpsertBucket")[0].Variables!["name"]!.GetValue<string>();
        Assert.All(create, c =>
        {
            Assert.Equal((server.Entity, "contract", run), (c.Variables!["entity"]!.GetValue<string>(), c.Variables["project"]!.GetValue<string>(), c.Variables["run"]!.GetValue<string>()));
        });

        var requested = create.SelectMany(c => c.Variables!["files"]!.AsArray().Select(f => f!.GetValue<string>())).ToList();
        foreach (var put in puts)
        {
            string name = Uri.UnescapeDataString(put.Path["/upload/".Length..]);
            Assert.Contains(name, requested);
            foreach (var header in FakeWandbServer.UploadHeaders)                   // echoed, split at the first colon
                Assert.Equal(header[(header.IndexOf(':') + 1)..], put.Headers.GetValueOrDefault(header[..header.IndexOf(':')]));
            Assert.Equal(server.Put[name].Length.ToString(), put.Headers.GetValueOrDefault("Content-Length"));
        }

        // Image values: {_type: image-file, path, sha256, size, format, width, height}; the path is the uploaded name.
        var images = server.Rows().SelectMany(r => r.Where(p => p.Value is JsonObject { } o && o["_type"] is not null)).ToList();
        Assert.Equal(2, images.Count);
        foreach (var (key, value) in images)
        {
            var image = value!.AsObject();
            Assert.Equal(["_type", "format", "height", "path", "sha256", "size", "width"], image.Select(p => p.Key).Order());
            Assert.Equal("image-file", image["_type"]!.GetValue<string>());
            Assert.Equal("png", image["format"]!.GetValue<string>());
            string path = image["path"]!.GetValue<string>(), sha = image["sha256"]!.GetValue<string>();
            Assert.Matches("^media/images/[A-Za-z0-9_-]+_[0-9]+_[0-9a-f]{20}\\.png$", path);
            Assert.Equal(sha[..20], path[^24..^4]);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(server.Put[path])), sha);
            Assert.Equal(server.Put[path].Length, image["size"]!.GetValue<int>());
            Assert.Equal((16, 8), (image["width"]!.GetValue<int>(), image["height"]!.GetValue<int>()));
        }
    }

    // §5 file_stream: keys, offsets, summary, uploaded after the PUT, heartbeat, completion last
    [Fact]
    public void File_stream_posts_have_the_official_keys_contiguous_offsets_and_end_with_complete()
    {
        var (server, dir) = RecordRun([]);
        using var _s = server;
        using var _d = dir;
        string run = server.GraphQLCalls("UpsertBucket")[0].Variables!["name"]!.GetValue<string>();
        var posts = server.Requests.Where(r => r.Path.EndsWith("/file_stream")).ToList();
        Assert.All(posts, p =>
        {
            Assert.Equal($"/files/{server.Entity}/contract/{run}/file_stream", p.Path);
            Assert.StartsWith("application/json", p.Headers.GetValueOrDefault("Content-Type"));
        });

        long expectedOffset = 0;
        var putDone = new HashSet<string>();
        int index = 0;
        foreach (var request in server.Requests)
        {
            index++;
            if (request.Method == "PUT" && request.Status == 200) putDone.Add(Uri.UnescapeDataString(request.Path["/upload/".Length..]));
            if (!request.Path.EndsWith("/file_stream")) continue;
            var body = request.Json!;
            Assert.All(body, p => Assert.Contains(p.Key, (string[])["files", "uploaded", "preempting", "complete", "exitcode"]));
            if (body["files"] is JsonObject files)
            {
                Assert.All(files, f => Assert.Contains(f.Key, (string[])["wandb-history.jsonl", "wandb-summary.json", "wandb-events.jsonl", "output.log"]));
                if (files["wandb-history.jsonl"] is JsonObject history)
                {
                    Assert.Equal(expectedOffset, history["offset"]!.GetValue<long>());   // offset = index of the first line
                    var lines = history["content"]!.AsArray().Select(l => l!.GetValue<string>()).ToList();
                    Assert.NotEmpty(lines);
                    Assert.All(lines, l => Assert.Matches("""^\{"_step":\d+,"_runtime":[0-9.eE+-]+,"_timestamp":[0-9.eE+-]+[,}]""", l));
                    expectedOffset += lines.Count;
                }
                if (files["wandb-summary.json"] is JsonObject summary)
                {
                    Assert.Equal(0, summary["offset"]!.GetValue<long>());           // overwritten in place, whole
                    Assert.Single(summary["content"]!.AsArray());
                }
            }
            foreach (var path in body["uploaded"]?.AsArray().Select(p => p!.GetValue<string>()) ?? [])
                Assert.Contains(path, putDone);                                      // announced only after its PUT succeeded
            if (body["complete"] is not null)
            {
                Assert.True(body["complete"]!.GetValue<bool>());
                Assert.Equal(0, body["exitcode"]!.GetValue<int>());
                Assert.Equal(2, body.Count);
                Assert.DoesNotContain(server.Requests.Skip(index), r => r.Path.EndsWith("/file_stream"));   // nothing after complete
            }
        }
        Assert.Equal(8, expectedOffset);
        Assert.Contains("\"train/loss\":NaN", server.History[1]);                   // bare non-finite tokens inside the line string
        Assert.Equal(1, posts.Count(p => p.Json!["complete"] is not null));
    }

    // §5 heartbeat shape, §7 timing and limits of the official client
    [Fact]
    public void An_idle_run_posts_an_empty_object_and_the_defaults_are_the_official_ones()
    {
        using var server = new FakeWandbServer(Key);
        using var dir = new TempDir();
        using (var run = WandbRun.Connect(new WandbSettings { BaseUrl = server.BaseUrl, ApiKey = Key, Timing = Fast })!)
        {
            run.Start(dir.Path, "idle", new JsonObject());
            WaitFor(() => server.Heartbeats >= 1);
            Assert.True(run.Finish(0));
        }
        Assert.Contains(server.Requests, r => r.Path.EndsWith("/file_stream") && r.Body == "{}");

        var official = new WandbTiming();
        Assert.Equal((15, 30, 180, 30, 2, 60, 20),
                     ((int)official.TransmitInterval.TotalSeconds, (int)official.HeartbeatInterval.TotalSeconds,
                      (int)official.FileStreamTimeout.TotalSeconds, (int)official.RequestTimeout.TotalSeconds,
                      (int)official.MinBackoff.TotalSeconds, (int)official.MaxBackoff.TotalSeconds, official.ConflictRetries));
        Assert.Equal((10 << 20) - (100 << 10), new WandbSettings().MaxLineBytes);
    }

    /// <summary>$name: Type pairs of a GraphQL operation's variable declarations.</summary>
    private static Dictionary<string, string> Declarations(string query)
    {
        string header = query[(query.IndexOf('(') + 1)..query.IndexOf(')')];
        return Declaration().Matches(header).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
    }

    [GeneratedRegex(@"\$(\w+)\s*:\s*([\[\]\w!]+)")]
    private static partial Regex Declaration();
}
