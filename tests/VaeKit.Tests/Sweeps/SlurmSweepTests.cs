using System.Diagnostics;
using System.Text.Json;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Sweeps;

/// <summary>
/// <c>vae sweep --slurm</c>: against fake sbatch/squeue commands (what is submitted, and that only unfinished runs are
/// resubmitted), and against a real one-node Slurm (tests/slurm/start-local-slurm.sh), whose collected summary must
/// equal the same sweep run here.
/// </summary>
[Trait("Category", "Slow")]
public class SlurmSweepTests
{
    /// <summary>A 2×2 grid of tiny runs of 4 steps each, one thread per run so the numbers do not depend on the CPUs.</summary>
    private static string[] Grid(TempDir dir, string name) =>
    [
        "sweep", "--grid", "kl_weight=0.1,10", "--grid", "latent=8,16", "--preset", "tiny", "--data", "synthetic:256", "--val-fraction", "0.25",
        "--batch-size", "16", "--epochs", "1", "--max-steps", "4", "--eval-samples", "2", "--eval-limit", "32", "--threads", "1",
        "--name", name, "--sweeps-dir", dir["sweeps"], "--cache-dir", dir["cache"],
    ];

    [Fact]
    public void Submits_one_array_task_per_run_and_resubmits_only_the_unfinished_ones()
    {
        using var dir = new TempDir();
        string bin = dir["bin"];
        Directory.CreateDirectory(bin);
        // sbatch records its arguments and answers job ids 41, 42, …; squeue knows no queued task.
        File.WriteAllText(Path.Combine(bin, "sbatch"), $"""
            #!/bin/sh
            n=$(cat '{dir["calls"]}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '{dir["calls"]}'
            printf '%s\n' "$@" > '{dir["sbatch"]}'-$n
            echo $((40 + n))
            """.Replace("\r", ""));
        File.WriteAllText(Path.Combine(bin, "squeue"), "#!/bin/sh\nexit 0\n");
        foreach (var tool in new[] { "sbatch", "squeue" })
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.Combine(bin, tool), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string? path = Environment.GetEnvironmentVariable("PATH");
        Environment.SetEnvironmentVariable("PATH", $"{bin}:{path}");
        try
        {
            var (exit, output, error) = CliRunner.Run([.. Grid(dir, "f"), "--slurm", "--slurm-opts", "--time=5:00 --comment='a b'"]);
            Assert.True(exit == 0, output + error);
            Assert.Contains("Submitted job 41: array 0-3 (4 of 4 runs)", output);
            string sweep = dir["sweeps/f"];
            var args = File.ReadAllLines(dir["sbatch"] + "-1");
            Assert.Contains("--array=0-3", args);
            Assert.Contains($"--output={sweep}/slurm/task-%a.log", args);
            Assert.Contains("--open-mode=append", args);
            Assert.Contains("--time=5:00", args);
            Assert.Contains("--comment=a b", args);
            Assert.Equal($"{sweep}/slurm/task.sh", args[^1]);
            // The task runs this very build: dotnet and the vae assembly, on the shared sweep directory.
            string script = File.ReadAllText(args[^1]);
            Assert.Contains($"vae.dll sweep --task \"$SLURM_ARRAY_TASK_ID\" --dir {sweep}", script);
            Assert.True(File.Exists(script.Split('\n')[2].Split(' ')[1]), script);
            Assert.True(File.Exists(Path.Combine(sweep, "plan.json")));

            // Task 2 runs; task 0 died (its log is there), tasks 1 and 3 never started.
            var (taskExit, taskOut, taskErr) = CliRunner.Run("sweep", "--task", "2", "--dir", sweep);
            Assert.True(taskExit == 0, taskOut + taskErr);
            Assert.Contains("task 2 done: kl_weight=10, latent=8 completed", taskOut);
            File.WriteAllText(Path.Combine(sweep, "slurm", "task-0.log"), "slurmstepd: error: *** JOB 41_0 CANCELLED DUE TO TIME LIMIT ***\n");

            var (collectExit, collectOut, _) = CliRunner.Run("sweep", "--collect", "--dir", sweep);
            Assert.Equal(1, collectExit);
            Assert.Contains("1 of 4 runs finished", collectOut);
            Assert.Contains($"{sweep}/slurm/task-0.log", collectOut);
            Assert.Contains("(no log: the task never started)", collectOut);
            Assert.DoesNotContain("kl-10_latent-8", collectOut);
            Assert.False(File.Exists(Path.Combine(sweep, "summary.json")));

            var (again, againOut, againErr) = CliRunner.Run("sweep", "--dir", sweep, "--slurm");
            Assert.True(again == 0, againOut + againErr);
            Assert.Contains("Submitted job 42: array 0-1,3 (3 of 4 runs)", againOut);
            Assert.Contains("--array=0-1,3", File.ReadAllLines(dir["sbatch"] + "-2"));

            var (badExit, _, badErr) = CliRunner.Run("sweep", "--task", "4", "--dir", sweep);
            Assert.Equal(2, badExit);
            Assert.Contains("it has runs 0 to 3", badErr);

            // Started as `dotnet vae.dll … --libtorch DIR`, the tasks are too.
            string bundled = LibTorchLocation.BundledLibTorch()!;
            var (libExit, libOut, libErr) = VaeProcess.Run([.. Grid(dir, "lt"), "--slurm", "--libtorch", bundled],
                new Dictionary<string, string?> { ["PATH"] = $"{bin}:{path}", ["VAEKIT_LIBTORCH"] = null });
            Assert.True(libExit == 0, libOut + libErr);
            string task = File.ReadAllText(dir["sweeps/lt/slurm/task.sh"]);
            Assert.Matches($"exec /\\S+/dotnet \\S+/vae\\.dll sweep --task \"\\$SLURM_ARRAY_TASK_ID\" --dir \\S+ --libtorch {System.Text.RegularExpressions.Regex.Escape(bundled)}\n", task);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PATH", path);
        }
    }

    [FactRequiring(Package.Slurm)]
    public void A_grid_sweep_through_Slurm_gives_the_summary_of_the_same_sweep_run_here()
    {
        Assert.True(Requirements.Missing(Package.Slurm) is null, Requirements.Missing(Package.Slurm));
        using var dir = new TempDir();

        var (localExit, localOut, localErr) = CliRunner.Run(Grid(dir, "here"));
        Assert.True(localExit == 0, localOut + localErr);

        var (exit, output, error) = CliRunner.Run([.. Grid(dir, "slurm"), "--slurm", "--slurm-opts", "--cpus-per-task=1 --time=10:00"]);
        Assert.True(exit == 0, output + error);
        string job = output.Split("Submitted job ")[1].Split(':')[0];
        string sweep = dir["sweeps/slurm"];
        var clock = Stopwatch.StartNew();
        while (Queued(job))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(5), $"job {job} still queued after 5 minutes:\n{Logs(sweep)}");
            Thread.Sleep(500);
        }

        var (collectExit, collectOut, collectErr) = CliRunner.Run("sweep", "--collect", "--dir", sweep);
        Assert.True(collectExit == 0, collectOut + collectErr + Logs(sweep));
        for (int task = 0; task < 4; task++)
            Assert.Contains($"task {task} done", File.ReadAllText(Path.Combine(sweep, "slurm", $"task-{task}.log")));

        // Same runs, same numbers: CPU training with one thread is deterministic per seed.
        static List<string> Rows(string summary)
        {
            using var json = JsonDocument.Parse(File.ReadAllText(summary));
            return json.RootElement.GetProperty("rows").EnumerateArray().Select(r =>
            {
                var fields = r.EnumerateObject().Where(p => p.Name is not ("run" or "train_seconds")).Select(p => $"{p.Name}={p.Value.GetRawText()}");
                return string.Join(' ', fields);
            }).ToList();
        }
        var here = Rows(dir["sweeps/here/summary.json"]);
        var slurm = Rows(Path.Combine(sweep, "summary.json"));
        Assert.Equal(4, slurm.Count);
        Assert.Equal(here, slurm);
        Assert.Contains("\"latent\":\"16\"", File.ReadAllText(Path.Combine(sweep, "summary.json")).Replace(" ", ""));
    }

    private static bool Queued(string job)
    {
        var (exit, output) = Requirements.Execute("squeue", "--noheader", $"--jobs={job}");
        return exit == 0 && output.Trim().Length > 0;
    }

    private static string Logs(string sweep) =>
        string.Join("\n", Directory.GetFiles(Path.Combine(sweep, "slurm"), "task-*.log").Order()
            .Select(f => $"--- {f}\n{string.Join("\n", File.ReadAllLines(f).TakeLast(15))}"));
}
