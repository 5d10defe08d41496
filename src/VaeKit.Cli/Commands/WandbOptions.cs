using System.CommandLine;
using Spectre.Console;
using VaeKit.Tracking.Wandb;
using VaeKit.Training;

namespace VaeKit.Cli.Commands;

/// <summary>
/// The W&amp;B flags of <c>vae train</c>. Tracking is on with <c>--wandb</c> (or any other --wandb-* flag);
/// WANDB_MODE=offline spools without a network, WANDB_MODE=disabled turns it off. The key comes only from
/// WANDB_API_KEY or ~/.netrc.
/// </summary>
internal sealed class WandbOptions
{
    private readonly Option<bool> _enable = new Option<bool>("--wandb") { Description = "Track the run on Weights & Biases (key: WANDB_API_KEY or ~/.netrc; WANDB_MODE=offline to spool and sync later)" }.Sets(Settings.Run.WandbTracking);
    private readonly Option<string?> _project = new("--wandb-project") { Description = "W&B project [default: $WANDB_PROJECT, else vaekit]" };
    private readonly Option<string?> _entity = new("--wandb-entity") { Description = "W&B entity (user or team) [default: $WANDB_ENTITY, else the key's default]" };
    private readonly Option<string?> _name = new("--wandb-name") { Description = "Display name of the W&B run [default: the run name]" };
    private readonly Option<string?> _tags = new("--wandb-tags") { Description = "Comma-separated W&B tags" };

    /// <summary>Test seam: the sender's clock (batching interval, timeouts, backoff).</summary>
    internal static WandbTiming? TimingOverride { get; set; }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _enable, _project, _entity, _name, _tags })
            command.Options.Add(option);
    }

    /// <summary>null without --wandb; otherwise checks the key (exit 2 when refused) before any data is loaded.</summary>
    public WandbRun? Connect(ParseResult r, IAnsiConsole console)
    {
        bool any = r.GetValue(_enable) || r.GetValue(_project) is not null || r.GetValue(_entity) is not null
                   || r.GetValue(_name) is not null || r.GetValue(_tags) is not null;
        if (!any) return null;
        var tags = r.GetValue(_tags)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var settings = WandbSettings.Resolve(Environment.GetEnvironmentVariable, r.GetValue(_project), r.GetValue(_entity), r.GetValue(_name), tags);
        if (TimingOverride is not null) settings = settings with { Timing = TimingOverride };
        if (settings.Mode == WandbMode.Disabled)
        {
            console.WriteLine("W&B: WANDB_MODE=disabled, not tracking this run.");
            return null;
        }
        var run = WandbRun.Connect(settings);
        Print(run, console);
        return run;
    }

    /// <summary>The run's loggers besides the standard ones: W&amp;B when tracking.</summary>
    public static IReadOnlyList<IRunLogger> Loggers(WandbRun? run) => run is null ? [] : [new WandbListener(run)];

    /// <summary>Ends the W&amp;B run with the process's exit code; a failure here never changes that exit code.</summary>
    public static void Finish(WandbRun? run, int exitCode, IAnsiConsole console)
    {
        if (run is null) return;
        try { run.Finish(exitCode); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            console.WriteLine($"W&B: could not finish the run ({run.Redact(e.Message)}); upload what was spooled with vae wandb sync.");
        }
        Print(run, console);
    }

    public static void Print(WandbRun? run, IAnsiConsole console)
    {
        if (run is null) return;
        foreach (var message in run.DrainMessages()) console.WriteLine(message);
    }
}
