using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Evaluation;
using VaeKit.Training;

namespace VaeKit.Sweeps;

/// <summary>How a sweep command ended.</summary>
public enum SweepOutcome
{
    /// <summary>Every run finished; the summary, plot and page are written.</summary>
    Completed,
    /// <summary>Ctrl-C or SIGTERM during a run; running the same command again continues.</summary>
    Interrupted,
    /// <summary>Some runs are not finished (queued or running in Slurm, failed, or never run): no summary yet.</summary>
    Incomplete,
    /// <summary>The unfinished runs went to Slurm as one job array.</summary>
    Submitted,
}

/// <summary>Where one run of a sweep stands: completed, diverged, pending/running (Slurm), failed, or not run.</summary>
public sealed record SweepTaskStatus(SweepEntry Entry, string State, SweepRow? Row, string? Log)
{
    /// <summary>True for a run with a result (completed or diverged); pending, running, failed and not-run tasks are not.</summary>
    public bool Finished => State is "completed" or "diverged";
}

/// <summary>What a sweep command did.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="Directory">Absolute path of sweeps/NAME/.</param>
/// <param name="Rows">The finished runs' rows (empty after a submission).</param>
/// <param name="Message">What to do next (interrupted, incomplete or submitted); null when completed.</param>
public sealed record SweepResult(SweepOutcome Outcome, string Directory, IReadOnlyList<SweepRow> Rows, SettingText? Message)
{
    /// <summary>Every run's state (for <see cref="SweepOutcome.Incomplete"/> and <see cref="SweepOutcome.Submitted"/>).</summary>
    public IReadOnlyList<SweepTaskStatus> Tasks { get; init; } = [];
    /// <summary>The Slurm job id of a submission.</summary>
    public string? JobId { get; init; }
}

/// <summary>
/// Runs a <see cref="SweepPlan"/> into sweeps/NAME/: plan.json (the whole plan, what Slurm tasks read), runs/ (one run
/// directory per entry, each with eval.json), grids/, summary.csv, summary.json, rate_distortion.png and index.html.
/// Locally the runs go one after another; with Slurm each is one task of a job array (<see cref="RunTask"/>) and
/// <see cref="Collect"/> gathers them. Either way a run with the sweep's eval.json is not redone and an interrupted
/// run resumes from its last checkpoint, so running the same command again continues a sweep.
/// </summary>
public static class Sweep
{
    /// <summary>Creates sweeps/NAME/ for <paramref name="plan"/>, or opens it when it holds the same plan.</summary>
    public static SweepDirectory Prepare(SweepPlan plan, string sweepsRoot)
    {
        plan.Validate();
        if (string.IsNullOrWhiteSpace(sweepsRoot)) throw new BadInputException($"{Settings.Sweep.SweepsDirectory} is empty; give a directory.");
        var dir = new SweepDirectory(Path.Combine(sweepsRoot, plan.Name));
        CheckSamePlan(dir, plan);
        WritePlan(dir, plan);   // the same experiment; hardware settings (device, threads) may have changed
        return dir;
    }

    /// <summary>The plan of an existing sweep directory (its plan.json).</summary>
    public static SweepPlan Load(SweepDirectory dir)
    {
        if (!File.Exists(dir.PlanFile))
            throw new BadInputException(File.Exists(dir.Plan)
                ? $"{dir.Path} was made by an older vae sweep without plan.json; continue it with the flags it was started with."
                : $"No sweep at {dir.Path} (plan.json is missing); give the directory vae sweep printed, e.g. sweeps/NAME.");
        try
        {
            var file = JsonSerializer.Deserialize<PlanFile>(File.ReadAllText(dir.PlanFile), Json.Indented)
                       ?? throw new JsonException("empty");
            return new SweepPlan { Name = file.Name, Base = file.Base, Axes = file.Axes, IncludeAe = file.WithAe, Eval = file.Eval }.Validate();
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{dir.PlanFile} is not a sweep plan: {e.Message}", e);
        }
    }

    /// <summary>Prepares sweeps/NAME/ and runs every unfinished run here, one after another.</summary>
    /// <param name="host">Runs one training with a listener (the CLI's progress display).</param>
    /// <param name="message">Progress lines ("run 2 of 7: …").</param>
    public static SweepResult Run(SweepPlan plan, string sweepsRoot, Func<Func<IRunCallback, RunResult>, RunResult> host,
                                  Action<string> message, CancellationToken cancellationToken) =>
        Run(plan, Prepare(plan, sweepsRoot), host, message, cancellationToken);

    /// <summary>Runs every run of the sweep that is neither finished nor in Slurm's queue, then writes the summary.</summary>
    public static SweepResult Run(SweepPlan plan, SweepDirectory dir, Func<Func<IRunCallback, RunResult>, RunResult> host,
                                  Action<string> message, CancellationToken cancellationToken)
    {
        var entries = plan.Entries();
        var queued = QueuedTasks(dir);
        var rows = new List<SweepRow>();
        foreach (var entry in entries)
        {
            string prefix = $"run {entry.Index + 1} of {entries.Count}: ";
            if (queued.TryGetValue(entry.Index, out var queue))
            {
                message($"{prefix}{entry.Label} is {queue.State} in Slurm (job {queue.Job}); not run here");
                continue;
            }
            var outcome = SweepTraining.RunToEvaluation(plan, entry, dir.Runs, host, m => message(prefix + m), cancellationToken);
            if (outcome.Outcome == RunOutcome.Interrupted)
                return new SweepResult(SweepOutcome.Interrupted, dir.Path, rows,
                    $"Interrupted in run {entry.Index + 1} of {entries.Count}; run the same command again (same {Settings.Run.Name}) to continue the sweep.");
            rows.Add(outcome.Row!);
        }
        if (queued.Count > 0)
            return Collect(plan, dir, message);

        message("writing grids, plot and summary");
        SweepOutputs.Write(dir, plan, rows);
        return new SweepResult(SweepOutcome.Completed, dir.Path, rows, null);
    }

    /// <summary>
    /// One Slurm array task: trains (or resumes) and evaluates run <paramref name="index"/> of the plan in
    /// <paramref name="dir"/>. Without --threads, libtorch uses the CPUs Slurm gave the task.
    /// </summary>
    public static SweepRunOutcome RunTask(SweepDirectory dir, int index, Func<Func<IRunCallback, RunResult>, RunResult> host,
                                          Action<string> message, CancellationToken cancellationToken)
    {
        var plan = Load(dir);
        var entries = plan.Entries();
        if (index < 0 || index >= entries.Count)
            throw new BadInputException($"{Settings.Sweep.Task} {index} is not a run of {dir.Path}: it has runs 0 to {entries.Count - 1}.");
        if (plan.Base.Runtime.Threads is null && int.TryParse(Environment.GetEnvironmentVariable("SLURM_CPUS_PER_TASK"), out int cpus) && cpus > 0)
            plan = plan with { Base = plan.Base with { Runtime = plan.Base.Runtime with { Threads = cpus } } };
        var entry = entries[index];
        message($"task {index} ({entry.RunName}) of sweep {plan.Name} on {Environment.MachineName}, " +
                $"Slurm job {Environment.GetEnvironmentVariable("SLURM_JOB_ID") ?? "–"}, {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss zzz}");
        return SweepTraining.RunToEvaluation(plan, entry, dir.Runs, host, message, cancellationToken);
    }

    /// <summary>Where every run of the sweep stands, asking Slurm about the ones not finished.</summary>
    public static IReadOnlyList<SweepTaskStatus> Status(SweepPlan plan, SweepDirectory dir)
    {
        var queued = QueuedTasks(dir);
        var submitted = Submissions(dir).SelectMany(s => s.Tasks).ToHashSet();
        var statuses = new List<SweepTaskStatus>();
        foreach (var entry in plan.Entries())
        {
            string log = Slurm.LogPath(dir, entry.Index);
            string? logIfAny = File.Exists(log) ? log : null;
            if (SweepTraining.Evaluated(plan, entry, dir.Runs) is SweepRow row)
                statuses.Add(new SweepTaskStatus(entry, "completed", row, logIfAny));
            else if (SweepTraining.DivergedRow(entry, dir.Runs) is SweepRow diverged)
                statuses.Add(new SweepTaskStatus(entry, "diverged", diverged, logIfAny));
            else if (queued.TryGetValue(entry.Index, out var q))
                statuses.Add(new SweepTaskStatus(entry, q.State, null, log));
            else if (logIfAny is not null || submitted.Contains(entry.Index))
                statuses.Add(new SweepTaskStatus(entry, "failed", null, logIfAny));
            else
                statuses.Add(new SweepTaskStatus(entry, "not run", null, null));
        }
        return statuses;
    }

    /// <summary>
    /// Writes the summary when every run is finished; otherwise reports which are not (queued or running in Slurm,
    /// failed with their Slurm log, never run) and writes nothing.
    /// </summary>
    public static SweepResult Collect(SweepPlan plan, SweepDirectory dir, Action<string> message)
    {
        var statuses = Status(plan, dir);
        var rows = statuses.Where(s => s.Finished).Select(s => s.Row!).ToList();
        if (statuses.Any(s => !s.Finished))
        {
            int waiting = statuses.Count(s => s.State is "pending" or "running" or "configuring" or "completing" or "suspended");
            var resubmit = new Operation(Settings.Operations.Sweep, Settings.Sweep.Directory.Is(dir.Path), Settings.Sweep.Slurm.Is(true));
            SettingText hint = $"{waiting} still queued or running in Slurm; collect again when they finish (squeue shows them).";
            if (waiting == 0)
                hint = $"Continue with: {resubmit} (resubmits the unfinished runs; they resume from their checkpoints), or without {Settings.Sweep.Slurm} to run them here.";
            return new SweepResult(SweepOutcome.Incomplete, dir.Path, rows, $"{rows.Count} of {statuses.Count} runs finished. {hint}") { Tasks = statuses };
        }
        message("writing grids, plot and summary");
        SweepOutputs.Write(dir, plan, rows);
        return new SweepResult(SweepOutcome.Completed, dir.Path, rows, null) { Tasks = statuses };
    }

    /// <summary>
    /// Submits the runs that are neither finished nor queued as one Slurm job array; when every run is finished,
    /// collects instead.
    /// </summary>
    /// <param name="command">The vae program as this process was started (see <see cref="Slurm.Submit"/>).</param>
    /// <param name="taskOptions">Options every task gets after <c>sweep --task N --dir DIR</c> (e.g. --libtorch DIR).</param>
    public static SweepResult Submit(SweepPlan plan, SweepDirectory dir, IReadOnlyList<string> command, IReadOnlyList<string> sbatchOptions,
                                     IReadOnlyList<string> taskOptions, Action<string> message)
    {
        var statuses = Status(plan, dir);
        if (statuses.All(s => s.Finished)) return Collect(plan, dir, message);
        var todo = statuses.Where(s => s.State is "failed" or "not run").Select(s => s.Entry.Index).ToList();
        if (todo.Count == 0)
            return new SweepResult(SweepOutcome.Incomplete, dir.Path, [],
                SettingText.Plain("Every unfinished run is already queued or running in Slurm; collect when they finish."))
            { Tasks = statuses };
        string job = Slurm.Submit(dir, plan.Name, todo, command, sbatchOptions, taskOptions);
        var jobs = Submissions(dir).Append(new Submission(job, todo, DateTimeOffset.Now)).ToList();
        Json.WriteAllTextAtomic(dir.SlurmJobs, JsonSerializer.Serialize(jobs, Json.Indented) + "\n");
        return new SweepResult(SweepOutcome.Submitted, dir.Path, [],
            $"Submitted job {job}: array {Slurm.ArraySpec(todo)} ({todo.Count} of {statuses.Count} runs), logs in {dir.SlurmLogs}.")
        {
            Tasks = statuses, JobId = job,
        };
    }

    /// <summary>Array tasks of this sweep's Slurm jobs still pending or running: task → (job, state).</summary>
    private static Dictionary<int, (string Job, string State)> QueuedTasks(SweepDirectory dir)
    {
        var submissions = Submissions(dir);
        var queued = new Dictionary<int, (string, string)>();
        if (submissions.Count == 0) return queued;
        // A task index counts for its latest submission only: an older job's leftover does not hide a resubmission.
        var latest = new Dictionary<int, string>();
        foreach (var s in submissions)
            foreach (int t in s.Tasks) latest[t] = s.JobId;
        var jobs = latest.Values.Distinct().ToList();
        foreach (var job in jobs)
        {
            var tasks = Slurm.Queued([job]);
            if (tasks is null) return queued;   // squeue unavailable: nothing is known to be queued
            foreach (var (task, state) in tasks)
                if (latest.TryGetValue(task, out var owner) && owner == job) queued[task] = (job, state);
        }
        return queued;
    }

    private sealed record Submission(string JobId, IReadOnlyList<int> Tasks, DateTimeOffset Submitted);

    private static IReadOnlyList<Submission> Submissions(SweepDirectory dir)
    {
        if (!File.Exists(dir.SlurmJobs)) return [];
        try { return JsonSerializer.Deserialize<List<Submission>>(File.ReadAllText(dir.SlurmJobs), Json.Indented) ?? []; }
        catch (JsonException e) { throw new BadInputException($"{dir.SlurmJobs} is damaged ({e.Message}); delete it to forget the sweep's Slurm jobs."); }
    }

    /// <summary>plan.json: everything a task in another process (on another node) needs to run its part.</summary>
    private sealed record PlanFile
    {
        public required string Name { get; init; }
        public required IReadOnlyList<SweepAxis> Axes { get; init; }
        public bool WithAe { get; init; }
        public required EvalOptions Eval { get; init; }
        public required RunConfig Base { get; init; }
        /// <summary>For people reading the file: which array task is which run.</summary>
        public IReadOnlyList<JsonObject>? Runs { get; init; }
    }

    private static void WritePlan(SweepDirectory dir, SweepPlan plan)
    {
        // Tasks may start in another directory: paths become absolute.
        var data = plan.Base.Data with
        {
            Source = DataSpec.Parse(plan.Base.Data.Source).ToArgument(),
            CacheDirectory = plan.Base.Data.CacheDirectory?.Absolute(),
        };
        var file = new PlanFile
        {
            Name = plan.Name, Axes = plan.Axes, WithAe = plan.IncludeAe, Eval = plan.Eval, Base = plan.Base with { Data = data },
            Runs = plan.Entries().Select(e => new JsonObject { ["task"] = e.Index, ["run"] = e.RunName, ["label"] = e.Label }).ToList(),
        };
        Json.WriteAllTextAtomic(dir.PlanFile, JsonSerializer.Serialize(file, Json.Indented) + "\n");
    }

    /// <summary>A sweep directory belongs to one plan: continuing it with other settings would mix experiments.</summary>
    private static void CheckSamePlan(SweepDirectory dir, SweepPlan plan)
    {
        string identity = plan.Identity();
        if (File.Exists(dir.Plan))
        {
            string stored = File.ReadAllText(dir.Plan).Trim();
            if (stored != identity)
                throw new BadInputException(
                    $"Sweep '{plan.Name}' already exists at {dir.Path} with other settings; run it with the same settings to continue it, or pick another {Settings.Run.Name}.");
            return;
        }
        try
        {
            Directory.CreateDirectory(dir.Runs);
            Json.WriteAllTextAtomic(dir.Plan, identity + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot write the sweep to {dir.Path}: {e.Message}", e);
        }
    }
}

/// <summary>The layout of sweeps/NAME/.</summary>
public sealed class SweepDirectory(string path)
{
    /// <summary>Absolute path of sweeps/NAME/.</summary>
    public string Path { get; } = System.IO.Path.GetFullPath(path);
    /// <summary>The plan's identity: what makes a later invocation the same sweep.</summary>
    public string Plan => System.IO.Path.Combine(Path, "sweep.json");
    /// <summary>The whole plan, read by <c>vae sweep --task N</c> and <c>--collect</c>.</summary>
    public string PlanFile => System.IO.Path.Combine(Path, "plan.json");
    /// <summary>runs/: one run directory per entry.</summary>
    public string Runs => System.IO.Path.Combine(Path, "runs");
    /// <summary>grids/: one image grid per run.</summary>
    public string Grids => System.IO.Path.Combine(Path, "grids");
    /// <summary>summary.csv: one row per run (<see cref="SweepRow"/>).</summary>
    public string SummaryCsv => System.IO.Path.Combine(Path, "summary.csv");
    /// <summary>summary.json: the same rows as JSON.</summary>
    public string SummaryJson => System.IO.Path.Combine(Path, "summary.json");
    /// <summary>Mean, standard deviation, min and max over seeds of each setting (sweeps with a seed axis).</summary>
    public string SeedSummaryCsv => System.IO.Path.Combine(Path, "summary_over_seeds.csv");
    /// <summary>rate_distortion.png: distortion against rate over the settings.</summary>
    public string RateDistortion => System.IO.Path.Combine(Path, "rate_distortion.png");
    /// <summary>fd_rate.png: the image-space FD of samples against rate over the settings.</summary>
    public string FdRate => System.IO.Path.Combine(Path, "fd_rate.png");
    /// <summary>overview.png: the originals, then each run's reconstructions and samples.</summary>
    public string Overview => System.IO.Path.Combine(Path, "overview.png");
    /// <summary>index.html: the sweep's page.</summary>
    public string Html => System.IO.Path.Combine(Path, "index.html");
    /// <summary>slurm/: Slurm logs, the task script and the submissions.</summary>
    public string SlurmLogs => System.IO.Path.Combine(Path, "slurm");
    /// <summary>slurm/task.sh: the script each array task runs.</summary>
    public string SlurmScript => System.IO.Path.Combine(SlurmLogs, "task.sh");
    /// <summary>slurm/jobs.json: the Slurm jobs submitted so far.</summary>
    public string SlurmJobs => System.IO.Path.Combine(SlurmLogs, "jobs.json");
    /// <summary>grids/RUN.png for the run named <paramref name="runName"/>.</summary>
    public string Grid(string runName) => System.IO.Path.Combine(Grids, $"{runName}.png");
}
