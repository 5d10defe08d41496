using System.Diagnostics;

namespace VaeKit.Tests.Tracking;

/// <summary>
/// Keeps the fake server honest: the official W&amp;B JavaScript SDK (npm @wandb/sdk 0.5.1, tests/wandb-js) logs a run
/// to it, and the fake must accept every request and record what that client meant to send.
/// </summary>
/// <remarks>
/// That SDK covers only Viewer, UpsertBucket and file_stream: it has no file upload (its RunUploadUrls query is never
/// called), no resume, no heartbeat and ignores "stopped". CreateRunFiles, the signed PUT, upload headers, heartbeats
/// and resume are held to docs/wandb-contract.md by WandbContractTests and WandbServiceTests instead.
/// </remarks>
public class WandbJsSdkTests(Xunit.Abstractions.ITestOutputHelper log)
{
    [FactRequiring(Package.WandbJs)]
    public void The_official_js_sdk_logs_a_run_the_fake_server_accepts()
    {
        using var server = new FakeWandbServer(WandbClientTests.Key) { StrictConfig = false };   // wandb-js sends config unwrapped
        var start = new ProcessStartInfo("node", "log-run.mjs")
        {
            WorkingDirectory = Requirements.WandbJsDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["WANDB_BASE_URL"] = server.BaseUrl, ["WANDB_API_KEY"] = WandbClientTests.Key, ["WANDB_MODE"] = "online" },
        };
        start.Environment.Remove("WANDB_ENTITY");
        start.Environment.Remove("WANDB_PROJECT");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(5)), "the JS SDK did not finish in 5 minutes (a hang guard)");
        string output = stdout.Result + stderr.Result;
        Assert.True(process.ExitCode == 0, output);
        foreach (var line in server.Log) log.WriteLine(line);

        Assert.True(server.Violations.Count == 0, string.Join("\n", server.Violations) + "\n" + output);
        Assert.Equal("js-sdk-check", server.Project);
        Assert.Equal(0.001, server.Config!["lr"]!.GetValue<double>());
        var rows = server.Rows();
        Assert.Equal([0L, 1, 2, 3, 4], rows.Select(r => r["_step"]!.GetValue<long>()));
        Assert.Equal(2.0, rows[4]["train/loss"]!.GetValue<double>());
        Assert.NotNull(server.Summary);
        Assert.True(server.Complete);
        Assert.Equal(0, server.ExitCode);
        Assert.Contains($"/runs/{server.RunName}", output);
    }
}
