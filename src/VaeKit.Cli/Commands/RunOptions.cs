using System.CommandLine;

namespace VaeKit.Cli.Commands;

/// <summary>Flags shared by the commands that load a trained run.</summary>
internal static class RunOptions
{
    public static Option<string> Run() => new("--run")
    {
        Description = "Run directory written by vae train (e.g. runs/tiny-vae-20261125-120000)",
        Required = true,
    };

    public static Option<string> Checkpoint() => new("--checkpoint")
    {
        Description = "best, last, or a checkpoint file",
        DefaultValueFactory = _ => "best",
    };

    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" };

    public static Option<int> Scale() => new("--scale") { Description = "Nearest-neighbour enlargement of each image", DefaultValueFactory = _ => 2 };

    public static Option<string?> Out() => new("--out") { Description = "PNG to write [default: inside the run directory]" };

    /// <summary>Default output path: RUN/NAME-TIMESTAMP.png, so repeated calls never overwrite each other.</summary>
    public static string OutPath(string? given, string runDirectory, string stem) =>
        given ?? Path.Combine(runDirectory, $"{stem}-{DateTime.Now:yyyyMMdd-HHmmss-fff}.png");
}
