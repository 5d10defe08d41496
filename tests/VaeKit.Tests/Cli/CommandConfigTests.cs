using Spectre.Console;
using VaeKit.Cli.Commands;
using VaeKit.Config;

namespace VaeKit.Tests.Cli;

/// <summary>Flags → RunConfig (<c>vae train</c>) and → SweepPlan (<c>vae sweep</c>), without training anything.</summary>
public class CommandConfigTests
{
    private static readonly IAnsiConsole Quiet = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) });
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 14, 5, 9, TimeSpan.Zero);

    private static RunConfig Train(params string[] args)
    {
        var models = new ModelOptions();
        var command = TrainCommand.Create(Quiet, models);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        return TrainCommand.ToConfig(parsed, models, Now);
    }

    private static VaeKit.Sweeps.SweepPlan Sweep(params string[] args)
    {
        var models = new ModelOptions();
        var command = SweepCommand.Create(Quiet, models);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        return SweepCommand.ToPlan(parsed, models, Now);
    }

    [Fact]
    public void Train_flags_land_in_the_config_fields_they_name()
    {
        var config = Train("--data", "fashion-mnist", "--model", "vq-vae", "--preset", "small", "--latent", "16", "--model-option", "codebook=64",
                           "--model-option", "layout=grid", "--lr", "0.002", "--kl-weight", "0.5", "--kl-schedule", "linear-warmup:100", "--epochs", "3",
                           "--batch-size", "32", "--max-steps", "50", "--schedule", "constant", "--no-cache", "--precision", "bf16", "--threads", "3",
                           "--val-fraction", "0.2", "--seed", "7");
        Assert.Equal("small-vq-vae-20261203-140509", config.Name);    // the default name: preset, family, the clock passed in
        Assert.Equal("small", config.Preset);
        Assert.Equal("vq-vae", config.Model.Kind);
        Assert.Equal(16, config.Model.Latent);
        Assert.Equal(64, config.Model.Options!["codebook"]!.GetValue<long>());
        Assert.Equal("grid", config.Model.Options!["layout"]!.GetValue<string>());
        Assert.Equal(0.002, config.Train.LearningRate);
        Assert.Equal(0.5, config.Train.KlWeight);
        Assert.Equal("linear-warmup:100", config.Train.KlSchedule);
        Assert.Equal(3, config.Train.Epochs);
        Assert.Equal(32, config.Train.BatchSize);
        Assert.Equal(50, config.Train.MaxSteps);
        Assert.Equal(7, config.Train.Seed);
        Assert.Equal("fashion-mnist", config.Data.Source);
        Assert.Equal(0.2, config.Data.ValidationFraction);
        Assert.Same(CacheLocation.Off, config.Data.CacheDirectory);     // --no-cache; null is the default folder
        Assert.Equal(Precision.Bf16, config.Runtime.Precision);
        Assert.Equal(3, config.Runtime.Threads);
    }

    [Fact]
    public void Train_defaults_are_the_synthetic_faces_and_the_tiny_vae()
    {
        var config = Train("--name", "mine");
        Assert.Equal("mine", config.Name);
        Assert.Equal("synthetic", config.Data.Source);
        Assert.Equal("vae", config.Model.Kind);
        Assert.Equal("tiny", config.Preset);
        Assert.Null(config.Data.CacheDirectory);
        Assert.Equal(Precision.Fp32, config.Runtime.Precision);
    }

    [Fact]
    public void Bad_train_settings_are_refused_naming_the_setting()
    {
        var e = Assert.Throws<BadInputException>(() => Train("--lr", "-1"));
        Assert.Contains("train.learning_rate", e.Message);
        Assert.Throws<BadInputException>(() => Train("--name", "../escape"));
    }

    [Fact]
    public void Sweep_flags_become_axes_over_one_base_config()
    {
        var plan = Sweep("--kl-weights", "0.1,1", "--grid", "latent=8,16", "--with-ae", "--eval-samples", "4", "--eval-limit", "100",
                         "--data", "synthetic:256", "--epochs", "2", "--name", "s");
        Assert.Equal("s", plan.Name);
        Assert.Equal(["kl_weight", "latent"], plan.Axes.Select(a => a.Key));
        Assert.Equal(["0.1", "1"], plan.Axes[0].Values);
        Assert.Equal(["8", "16"], plan.Axes[1].Values);
        Assert.True(plan.IncludeAe);
        Assert.Equal(4, plan.Eval.ImportanceSamples);
        Assert.Equal(100, plan.Eval.Limit);
        Assert.Equal(2, plan.Base.Train.Epochs);
        Assert.Equal("synthetic:256", plan.Base.Data.Source);
    }

    [Fact]
    public void A_setting_given_both_as_a_flag_and_as_an_axis_is_refused()
    {
        var e = Assert.Throws<BadInputException>(() => Sweep("--grid", "latent=8,16", "--latent", "8", "--name", "s"));
        Assert.Contains("both set latent", e.Message);
    }

    [Fact]
    public void A_resume_warns_about_the_flags_it_ignores_and_only_those()
    {
        using var dir = new TempDir();
        var (exit, output, error) = CliRunner.Run("train", "--resume", dir["no-such-run"], "--lr", "0.1", "--latent", "4", "--precision", "bf16", "--threads", "1", "--epochs", "9");
        Assert.Equal(2, exit);                                       // the run does not exist: refused after the warning
        string warning = (output + error).Split('\n').Single(l => l.Contains("ignoring"));
        Assert.Contains("--lr", warning);
        Assert.Contains("--latent", warning);
        var train = VaeKit.Cli.VaeCli.CreateRoot(Quiet).Subcommands.Single(c => c.Name == "train");
        foreach (var changeable in VaeKit.Training.ResumeOptions.Changeable.Select(k => VaeKit.Cli.SettingFlags.FlagOf(train, k)))
        {
            Assert.StartsWith("--", changeable);
            Assert.DoesNotContain(changeable, warning);
        }
    }
}
