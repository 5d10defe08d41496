using System.CommandLine;
using Spectre.Console;
using VaeKit.Tracking.Wandb;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae wandb sync runs/NAME</c>: uploads an offline or partly delivered W&amp;B run from runs/NAME/wandb/.</summary>
internal static class WandbCommand
{
    private static readonly Argument<string> Run = new("run") { Description = "The run directory (runs/NAME) whose wandb/ folder to upload" };
    private static readonly Option<int> Timeout = new("--timeout") { Description = "Seconds to keep trying before giving up (rerun to continue)", DefaultValueFactory = _ => 600 };

    public static Command Create(IAnsiConsole console)
    {
        var sync = new Command("sync", "Upload what the W&B server lacks of a run (offline, or trained while the server was unreachable). Safe to repeat.")
        {
            Run, Timeout,
        };
        sync.SetAction(r =>
        {
            var settings = WandbSettings.Resolve(Environment.GetEnvironmentVariable);
            if (WandbOptions.TimingOverride is not null) settings = settings with { Timing = WandbOptions.TimingOverride };
            try
            {
                var result = WandbSync.Sync(r.GetValue(Run)!, settings, TimeSpan.FromSeconds(r.GetValue(Timeout)), m => console.WriteLine(m));
                console.WriteLine($"synced {result.RowsSent} new row(s) ({result.RowsOnServerBefore} were already there, {result.RowsInSpool} in the spool)" +
                                  $"{(result.Completed ? $", finished with exit code {result.ExitCode}" : "")}: {result.Url}");
                return ExitCodes.Ok;
            }
            catch (WandbUnavailableException e)
            {
                r.InvocationConfiguration.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Failure;
            }
        });
        return new Command("wandb", "Weights & Biases helpers.") { sync };
    }
}
