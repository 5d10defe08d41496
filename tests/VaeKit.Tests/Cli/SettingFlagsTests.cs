using System.CommandLine;
using System.Reflection;
using Spectre.Console;
using VaeKit.Cli;

namespace VaeKit.Tests.Cli;

/// <summary>
/// The key → flag table: library messages name settings by key (<see cref="Settings"/>), and the CLI renders them with
/// the flags of the command that ran, read off the options' own declarations.
/// </summary>
public class SettingFlagsTests
{
    private static readonly RootCommand Root = VaeCli.CreateRoot(AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) }));

    private static Command Sub(string name) => Root.Subcommands.Single(c => c.Name == name);

    private static IEnumerable<Command> AllCommands(Command command) => command.Subcommands.SelectMany(AllCommands).Prepend(command);

    /// <summary>Settings only config.json (or a library call) can set; every other key has a flag somewhere.</summary>
    private static readonly HashSet<string> ConfigOnly =
        ["train.beta1", "train.beta2", "train.checkpoint_minutes", "runtime.readback_every"];

    private static IEnumerable<SettingKey> DeclaredKeys() =>
        typeof(Settings).GetNestedTypes().SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static))
            .Where(f => f.FieldType == typeof(SettingKey)).Select(f => (SettingKey)f.GetValue(null)!);

    [Fact]
    public void Every_declared_setting_a_user_can_give_has_a_flag()
    {
        var set = AllCommands(Root).SelectMany(c => SettingFlags.Table(c).Keys).ToHashSet();
        var missing = DeclaredKeys().Where(k => !set.Contains(k) && !ConfigOnly.Contains(k.Path)).Select(k => k.Path).ToList();
        Assert.Empty(missing);
        Assert.All(ConfigOnly, k => Assert.DoesNotContain(new SettingKey(k), set));   // the list is not stale either
    }

    [Fact]
    public void No_command_has_two_options_for_one_setting()
    {
        foreach (var command in AllCommands(Root))
        {
            var keys = command.Options.Select(SettingFlags.KeyOf).OfType<SettingKey>().ToList();
            Assert.True(keys.Count == keys.Distinct().Count(), $"{command.Name}: {string.Join(", ", keys.GroupBy(k => k).Where(g => g.Count() > 1).Select(g => g.Key))}");
        }
    }

    [Fact]
    public void A_message_is_rendered_in_the_flags_of_the_command_that_ran()
    {
        SettingText text = $"{Settings.Train.LearningRate} must be positive; lower {Settings.Train.BatchSize.Is(16)}.";
        Assert.Equal("train.learning_rate must be positive; lower train.batch_size=16.", text.ToString());
        Assert.Equal("--lr must be positive; lower --batch-size 16.", SettingFlags.Render(text, Sub("train")));

        // One key, two spellings: the sweep names its evaluation sample count --eval-samples, vae eval --samples.
        SettingText samples = $"{Settings.Eval.Samples} must be at least 1 (got 0).";
        Assert.StartsWith("--samples ", SettingFlags.Render(samples, Sub("eval")));
        Assert.StartsWith("--eval-samples ", SettingFlags.Render(samples, Sub("sweep")));
    }

    [Fact]
    public void Family_options_switches_and_config_only_keys_read_as_a_user_would_type_them()
    {
        var train = Sub("train");
        Assert.Equal("--model-option code_dim must divide 8; try --model-option code_dim=4",
                     SettingFlags.Render($"{SettingKey.ModelOption("code_dim")} must divide 8; try {SettingKey.ModelOption("code_dim").Is(4)}", train));
        Assert.Equal("--slurm", SettingFlags.Render($"{Settings.Sweep.Slurm.Is(true)}", Sub("sweep")));
        Assert.Equal("train.beta1 is out of range", SettingFlags.Render($"{Settings.Train.Beta1} is out of range", train));
        Assert.Equal("--libtorch needs a folder", SettingFlags.Render($"{Settings.Runtime.LibTorch} needs a folder", train));   // a recursive root option
    }

    [Fact]
    public void An_advised_operation_is_written_as_the_command_to_type()
    {
        var refit = new Operation(Settings.Operations.Prior, Settings.Run.Directory.Is("runs/my run"), Settings.Prior.Kind.Is("gmm"));
        SettingText text = $"no gmm prior yet: fit one with {refit}.";
        Assert.Equal("no gmm prior yet: fit one with vae prior --run 'runs/my run' --kind gmm.", SettingFlags.Render(text, Sub("eval")));
        Assert.Equal("no gmm prior yet: fit one with the prior operation with run.directory=runs/my run, prior.kind=gmm.", text.ToString());
    }

    [Fact]
    public void A_library_message_names_no_flag_and_the_cli_gives_the_flag()
    {
        var e = Assert.Throws<BadInputException>(() => new VaeKit.Evaluation.EvalOptions { ImportanceSamples = 0 }.Validate());
        Assert.Equal("eval.samples must be at least 1 (got 0).", e.Message);
        Assert.Equal([Settings.Eval.Samples], e.Text.Keys);
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("sweep", "--grid", "latent=4,8", "--eval-samples", "0", "--max-steps", "1", "--sweeps-dir", dir["sweeps"], "--cache-dir", dir["cache"]);
        Assert.Equal(ExitCodes.BadInput, exit);
        Assert.StartsWith("error: --eval-samples must be at least 1 (got 0).", error);
    }
}
