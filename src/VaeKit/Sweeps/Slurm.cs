using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace VaeKit.Sweeps;

/// <summary>
/// The little of Slurm a sweep needs: <c>sbatch</c> one job array whose task N runs run N of the plan, and
/// <c>squeue</c> to see which tasks are still pending or running. VaeKit does no scheduling of its own.
/// </summary>
public static class Slurm
{
    /// <summary>
    /// Submits tasks <paramref name="indices"/> of the sweep in <paramref name="dir"/> as one array. Each task runs
    /// <paramref name="command"/> followed by <c>sweep --task N --dir DIR</c>; its output goes to
    /// slurm/task-N.log (appended, so a resubmitted task keeps the earlier attempt's log above its own).
    /// </summary>
    /// <param name="command">The <c>vae</c> program as this process was started: [dotnet, VaeKit.Cli.dll] or [vae], plus
    /// any option that must reach the tasks (--libtorch).</param>
    /// <param name="options">Extra sbatch options as the user wrote them (<c>--slurm-opts</c>), split like a shell would.</param>
    /// <returns>The job id sbatch printed.</returns>
    public static string Submit(SweepDirectory dir, string name, IReadOnlyList<int> indices, IReadOnlyList<string> command,
                                IReadOnlyList<string> options, IReadOnlyList<string> taskOptions)
    {
        Directory.CreateDirectory(dir.SlurmLogs);
        var script = new StringBuilder("#!/bin/sh\n")
            .Append("# Written by vae sweep --slurm: array task N trains and evaluates run N of plan.json.\n")
            .Append("exec ").Append(string.Join(' ', command.Select(Quote)))
            .Append(" sweep --task \"$SLURM_ARRAY_TASK_ID\" --dir ").Append(Quote(dir.Path));
        foreach (var option in taskOptions) script.Append(' ').Append(Quote(option));
        script.Append('\n');
        Json.WriteAllTextAtomic(dir.SlurmScript, script.ToString());
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(dir.SlurmScript, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                               UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        string[] args =
        [
            "--parsable", $"--job-name=vae-sweep-{name}", $"--array={ArraySpec(indices)}",
            $"--output={Path.Combine(dir.SlurmLogs, "task-%a.log")}", "--open-mode=append",
            $"--chdir={Environment.CurrentDirectory}", .. options, dir.SlurmScript,
        ];
        var (exit, output, error) = Execute("sbatch", args);
        if (exit != 0)
            throw new BadInputException($"sbatch refused the sweep (exit {exit}): {FirstLine(error, output)}");
        string jobId = output.Trim().Split('\n')[^1].Split(';')[0].Trim();
        if (!long.TryParse(jobId, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw new BadInputException($"sbatch did not print a job id (it printed '{output.Trim()}').");
        return jobId;
    }

    /// <summary>The log file of array task <paramref name="index"/>.</summary>
    public static string LogPath(SweepDirectory dir, int index) => Path.Combine(dir.SlurmLogs, $"task-{index}.log");

    /// <summary>
    /// Array tasks of <paramref name="jobIds"/> that Slurm still has pending or running (task index → state), or
    /// null when squeue cannot be asked (not installed, controller down).
    /// </summary>
    public static IReadOnlyDictionary<int, string>? Queued(IReadOnlyList<string> jobIds)
    {
        if (jobIds.Count == 0) return new Dictionary<int, string>();
        (int exit, string output, string error) result;
        try { result = Execute("squeue", ["--noheader", "--array", $"--jobs={string.Join(',', jobIds)}", "--format=%K %T"]); }
        catch (BadInputException) { return null; }
        // A job Slurm has forgotten (finished a while ago) is an error to squeue, and certainly not queued.
        if (result.exit != 0) return result.error.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase) ? new Dictionary<int, string>() : null;
        var queued = new Dictionary<int, string>();
        foreach (var line in result.output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int task))
                queued[task] = parts[1].ToLowerInvariant();
            // A pending array not yet split into tasks shows as a range, "0-3" or "[0-3%2]": every task in it is pending.
            else if (parts.Length == 2)
                foreach (int t in ParseArray(parts[0].Trim('[', ']').Split('%')[0]))
                    queued[t] = parts[1].ToLowerInvariant();
        }
        return queued;
    }

    /// <summary>0,1,2,5 → "0-2,5": sbatch's --array syntax.</summary>
    public static string ArraySpec(IReadOnlyList<int> indices)
    {
        var parts = new List<string>();
        var sorted = indices.Distinct().Order().ToList();
        for (int i = 0; i < sorted.Count;)
        {
            int j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(',', parts);
    }

    private static IEnumerable<int> ParseArray(string spec)
    {
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var ends = part.Split('-');
            if (ends.Length == 2 && int.TryParse(ends[0], out int a) && int.TryParse(ends[1], out int b))
                for (int t = a; t <= b; t++) yield return t;
            else if (int.TryParse(part, out int single))
                yield return single;
        }
    }

    /// <summary>Splits <c>--slurm-opts</c> text into arguments the way a POSIX shell would (quotes, backslashes).</summary>
    public static IReadOnlyList<string> SplitOptions(string? text)
    {
        var args = new List<string>();
        if (string.IsNullOrWhiteSpace(text)) return args;
        var current = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quote == '\'') { if (c == '\'') quote = '\0'; else current.Append(c); }
            else if (quote == '"')
            {
                if (c == '"') quote = '\0';
                else if (c == '\\' && i + 1 < text.Length && text[i + 1] is '"' or '\\' or '$') current.Append(text[++i]);
                else current.Append(c);
            }
            else if (c is '\'' or '"') { quote = c; inWord = true; }
            else if (c == '\\' && i + 1 < text.Length) { current.Append(text[++i]); inWord = true; }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord) args.Add(current.ToString());
                current.Clear();
                inWord = false;
            }
            else { current.Append(c); inWord = true; }
        }
        if (quote != '\0') throw new BadInputException($"{Settings.Sweep.SlurmOptions} has an unclosed {quote} quote: {text}");
        if (inWord) args.Add(current.ToString());
        return args;
    }

    /// <summary>Single-quotes an argument for /bin/sh when it needs it (the batch script; the CLI's advised commands).</summary>
    public static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or '=' or ':' or ',' or '+')
            ? arg
            : "'" + arg.Replace("'", "'\\''") + "'";

    private static (int Exit, string Output, string Error) Execute(string program, IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        Process process;
        try { process = Process.Start(start)!; }
        catch (Win32Exception e)
        {
            throw new BadInputException($"Cannot run {program}: {e.Message}. {Settings.Sweep.Slurm} needs Slurm's client commands (sbatch, squeue) on PATH.", e);
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                throw new BadInputException($"{program} did not answer within 2 minutes; is the Slurm controller up (sinfo)?");
            }
            return (process.ExitCode, output.Result, error.Result);
        }
    }

    private static string FirstLine(params string[] texts) =>
        texts.SelectMany(t => t.Split('\n')).Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? "(no message)";
}
