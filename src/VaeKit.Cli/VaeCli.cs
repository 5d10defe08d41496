using System.CommandLine;
using Spectre.Console;
using VaeKit.Cli.Commands;

namespace VaeKit.Cli;

/// <summary>Builds the command tree and maps outcomes to the documented exit codes (README "Exit codes").</summary>
public static class VaeCli
{
    private static readonly Option<string?> LibTorch = new Option<string?>("--libtorch")
    {
        Description = "Use the libtorch of an existing PyTorch install (its torch/lib folder, or 'python'), e.g. for CUDA " +
                      "[env: VAEKIT_LIBTORCH]",
        Recursive = true,
        HelpName = "DIR|python",
    }.Sets(Settings.Runtime.LibTorch);

    /// <summary>The whole command tree (also what docs/cli.md is generated from).</summary>
    internal static RootCommand CreateRoot(IAnsiConsole console)
    {
        var root = new RootCommand("VaeKit: train and inspect convolutional AutoEncoders and VAEs on image sets.")
        {
            LibTorch,
            TrainCommand.Create(console),
            SampleCommand.Create(console),
            ReconstructCommand.Create(console),
            InterpolateCommand.Create(console),
            TraverseCommand.Create(console),
            EvalCommand.Create(console),
            PriorCommand.Create(console),
            FdCommand.Create(console), FdNetCommand.Create(console),
            SweepCommand.Create(console),
            InfoCommand.Create(console),
            DataCommand.Create(console),
            BenchCommand.Create(console),
            ReportCommand.Create(console),
            WandbCommand.Create(console),
            ExportCommand.Create(console), ImportCommand.Create(console),
            ServeCommand.Create(console),
        };
        root.Subcommands.Add(DocsCommand.Create(console, root));
        // --version: this build's version and commit, and the libtorch and device it finds (VersionCommand).
        root.Options.OfType<VersionOption>().Single().Action = new VersionCommand.PrintVersion(console);
        return root;
    }

    public static int Run(string[] args, IAnsiConsole console, TextWriter error)
    {
        var root = CreateRoot(console);
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
                error.WriteLine($"error: {e.Message}");
            error.WriteLine($"See '{string.Join(' ', parse.CommandResult.Command.Name == root.Name ? "vae" : "vae " + parse.CommandResult.Command.Name)} --help'.");
            return ExitCodes.BadInput;
        }

        try
        {
            // Before anything touches TorchSharp: the first call binds the process to one libtorch for good.
            if ((parse.GetValue(LibTorch) ?? Environment.GetEnvironmentVariable("VAEKIT_LIBTORCH")) is { Length: > 0 } libtorch)
                LibTorchLocation.Use(libtorch);
            else if (LibTorchLocation.BundledLibTorch() is null && parse.CommandResult.Command != root)
                throw new BadInputException(
                    "This VaeKit was built without a libtorch (-p:LibTorch=external): give the one to use with " +
                    "--libtorch DIR|python or VAEKIT_LIBTORCH (docs/gpu.md).");
            return parse.Invoke(new InvocationConfiguration
            {
                Output = new AnsiConsoleWriter(console),
                Error = error,
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,   // Ctrl-C is handled by the train command (save, then exit 130)
            });
        }
        catch (BadInputException e)
        {
            error.WriteLine($"error: {SettingFlags.Render(e.Text, parse.CommandResult.Command)}");
            return ExitCodes.BadInput;
        }
        catch (Training.CheckpointWriteException e)   // a failure, said in user terms (what is intact, how to go on)
        {
            error.WriteLine($"error: {SettingFlags.Render(e.Text, parse.CommandResult.Command)}");
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("interrupted");
            return ExitCodes.Interrupted;
        }
        catch (Exception e)
        {
            // Unexpected: one line for the user (libtorch messages carry a C++ backtrace after the first line),
            // the whole story on request.
            error.WriteLine($"error: {e.GetType().Name}: {e.Message.Split('\n')[0].Trim()}");
            if (Environment.GetEnvironmentVariable("VAEKIT_DEBUG") is "1" or "true")
                error.WriteLine(e.ToString());
            else
                error.WriteLine("(set VAEKIT_DEBUG=1 for the stack trace)");
            return ExitCodes.Failure;
        }
    }

    /// <summary>Lets System.CommandLine's help text go through the same console as everything else.</summary>
    private sealed class AnsiConsoleWriter(IAnsiConsole console) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void Write(char value) => console.Profile.Out.Writer.Write(value);
        public override void Write(string? value) => console.Profile.Out.Writer.Write(value);
        public override void WriteLine(string? value) => console.Profile.Out.Writer.WriteLine(value);
    }
}
