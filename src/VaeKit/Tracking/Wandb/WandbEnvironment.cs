using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// What a run says about where it came from: the client (VaeKit's version, the .NET runtime), the machine, and the
/// code (git commit and remote URL, credentials removed). It fills the UpsertBucket <c>program</c>, <c>commit</c>,
/// <c>repo</c> and <c>host</c> variables and the config's <c>_wandb</c> block (docs/wandb-contract.md §3).
/// </summary>
internal static class WandbEnvironment
{
    /// <summary>VaeKit's version, e.g. "vaekit 0.1.0" (no source hash).</summary>
    public static string ClientVersion { get; } =
        "vaekit " + ((typeof(WandbEnvironment).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                     ?? typeof(WandbEnvironment).Assembly.GetName().Version?.ToString() ?? "0").Split('+')[0]);

    /// <summary>The runtime, where a Python client names its Python version, e.g. ".NET 10.0.1".</summary>
    public static string Runtime => RuntimeInformation.FrameworkDescription;

    /// <summary>
    /// The <c>_wandb</c> config block. The official SDK's resume treats a run whose <c>_wandb</c> has no <c>t</c>
    /// (telemetry) as never started, so <c>t</c> is always there, with the two entries that apply (client version and
    /// platform); <c>m</c> (metric definitions) is empty; <c>e</c> holds this writer's environment.
    /// </summary>
    public static JsonObject Block(WandbSpoolInfo info)
    {
        var environment = new JsonObject
        {
            ["os"] = RuntimeInformation.OSDescription,
            ["program"] = info.Program,
            ["host"] = info.Host,
            ["cpu_count_logical"] = Environment.ProcessorCount,
        };
        if (info.Commit is not null || info.Repo is not null)
            environment["git"] = new JsonObject { ["remote"] = info.Repo, ["commit"] = info.Commit };
        return new JsonObject
        {
            ["cli_version"] = ClientVersion,
            ["runtime"] = Runtime,
            ["t"] = new JsonObject { ["5"] = ClientVersion, ["13"] = RuntimeInformation.RuntimeIdentifier },
            ["m"] = new JsonArray(),
            ["e"] = new JsonObject { [info.Id] = environment },
        };
    }

    /// <summary>
    /// HEAD's commit and the <c>origin</c> remote's URL (credentials removed) of the repository holding
    /// <paramref name="directory"/>; nulls outside a repository or without git.
    /// </summary>
    public static (string? Commit, string? Repo) Git(string directory)
    {
        string? commit = RunGit(directory, "rev-parse", "HEAD");
        if (commit is null) return (null, null);
        string? remote = RunGit(directory, "config", "--get", "remote.origin.url");
        return (commit, remote is null ? null : WithoutCredentials(remote));
    }

    /// <summary>https://user:token@host/x.git becomes https://host/x.git; scp-like and path remotes are kept.</summary>
    public static string WithoutCredentials(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0 && uri.Scheme is "http" or "https" or "ssh" or "git")
            return new UriBuilder(uri) { UserName = "", Password = "" }.Uri.ToString();
        return url;
    }

    private static string? RunGit(string directory, params string[] args)
    {
        try
        {
            var start = new ProcessStartInfo("git")
            {
                WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (var arg in args) start.ArgumentList.Add(arg);
            using var git = Process.Start(start);
            if (git is null) return null;
            var output = git.StandardOutput.ReadToEndAsync();
            _ = git.StandardError.ReadToEndAsync();
            if (!git.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                try { git.Kill(); } catch (InvalidOperationException) { }
                return null;
            }
            string text = output.GetAwaiter().GetResult().Trim();
            return git.ExitCode == 0 && text.Length > 0 ? text : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return null;   // no git, or the directory is gone
        }
    }
}
