using VaeKit.Config;
using VaeKit.Sweeps;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Sweeps;

/// <summary>The grid: parsing, the Cartesian product and its run names, the seed spread, and bad grids refused.</summary>
public class SweepGridTests
{
    private static SweepPlan Plan(bool withAe = false, params string[] axes) => new SweepPlan
    {
        Name = "g",
        Base = new RunConfig { Name = "g", Model = Presets.Tiny, Train = new TrainConfig(), Data = new DataConfig() },
        Axes = axes.Select(a => SweepGrid.ParseAxis(a)).ToList(),
        IncludeAe = withAe,
    }.Validate();

    [Fact]
    public void Two_axes_make_their_product_with_the_last_axis_fastest_and_names_from_the_values()
    {
        var plan = Plan(withAe: true, "kl_weight=0.10,1e1", "latent=16,32");
        var entries = plan.Entries();
        Assert.Equal(["kl-0.1_latent-16", "kl-0.1_latent-32", "kl-10_latent-16", "kl-10_latent-32", "ae_latent-16", "ae_latent-32"],
                     entries.Select(e => e.RunName));
        Assert.Equal(Enumerable.Range(0, 6), entries.Select(e => e.Index));
        Assert.Equal("kl_weight=10, latent=32", entries[3].Label);

        var config = plan.ConfigFor(entries[3]);
        Assert.Equal((10.0, 32, ModelKinds.Vae, "kl-10_latent-32"), (config.Train.KlWeight, config.Model.Latent, config.Model.Kind, config.Name));
        var ae = plan.ConfigFor(entries[5]);
        Assert.Equal((ModelKinds.Ae, 32), (ae.Model.Kind, ae.Model.Latent));
    }

    [Fact]
    public void A_kl_weight_sweep_keeps_the_run_names_and_identity_of_earlier_versions()
    {
        var plan = Plan(withAe: true, "kl_weight=0.1,1");
        Assert.Equal(["kl-0.1", "kl-1", "ae"], plan.Entries().Select(e => e.RunName));
        Assert.StartsWith("{\"kl_weights\":[0.1,1],\"with_ae\":true,", plan.Identity());
    }

    [Fact]
    public void Every_key_reaches_its_config_field()
    {
        var plan = Plan(false, "widths=16x32", "blocks=2", "lr=0.01", "batch_size=8", "free_bits=0.25", "kl_schedule=linear-warmup:50",
                        "seed=3", "epochs=2", "max_steps=7", "norm=group", "groups=4", "schedule=constant", "flip=true", "warmup=5",
                        "weight_decay=0", "grad_clip=10");
        var c = plan.ConfigFor(plan.Entries().Single());
        Assert.Equal([16, 32], c.Model.Widths);
        Assert.Equal((2, NormKind.Group, 4), (c.Model.Blocks, c.Model.Norm, c.Model.Groups));
        Assert.Equal((0.01, 8, 0.25, "linear-warmup:50", 3, 2, 7), (c.Train.LearningRate, c.Train.BatchSize, c.Train.FreeBits, c.Train.KlSchedule, c.Train.Seed, c.Train.Epochs, c.Train.MaxSteps));
        Assert.Equal((LrSchedule.Constant, 5, 0.0, 10.0, true), (c.Train.Schedule, c.Train.WarmupSteps, c.Train.WeightDecay, c.Train.GradClip, c.Data.Flip));
        Assert.Equal("blocks-2_lr-0.01_batch_size-8_free_bits-0.25_kl_schedule-linear-warmup_50_seed-3_epochs-2_max_steps-7_norm-group_groups-4_schedule-constant_flip-true_warmup-5_weight_decay-0_grad_clip-10",
                     plan.Entries().Single().RunName[(plan.Entries().Single().RunName.IndexOf('_') + 1)..]);
    }

    [Fact]
    public void The_spread_over_seeds_is_the_mean_and_the_sample_standard_deviation()
    {
        var spread = Spread.Of([1.0, 2.0, 3.0, null])!;
        Assert.Equal((2.0, 1.0, 1.0, 3.0, 3), (spread.Mean, spread.Std, spread.Min, spread.Max, spread.N));
        Assert.Equal(0, Spread.Of([5.0])!.Std);
        Assert.Null(Spread.Of([null]));

        SweepRow Row(string kl, string seed, double mse) => new()
        {
            Label = "", Model = "vae", Run = "", Status = "completed", Mse = mse,
            Settings = new Dictionary<string, string> { ["kl_weight"] = kl, ["seed"] = seed },
        };
        var groups = SweepSummary.Groups([Row("1", "0", 0.1), Row("1", "1", 0.3), Row("2", "0", 0.5), Row("2", "1", 0.5)]);
        Assert.Equal(["kl_weight=1", "kl_weight=2"], groups.Select(g => g.Label));
        Assert.Equal(0.2, groups[0].Mse!.Mean, 12);
        Assert.Equal(Math.Sqrt(0.02), groups[0].Mse!.Std, 12);
        Assert.Equal(0, groups[1].Mse!.Std);
    }

    [Theory]
    [InlineData("0,1,2,5", "0-2,5")]
    [InlineData("3", "3")]
    [InlineData("7,1,2,3,9,8", "1-3,7-9")]
    public void Array_specs_are_what_sbatch_takes(string indices, string spec) =>
        Assert.Equal(spec, Slurm.ArraySpec(indices.Split(',').Select(int.Parse).ToList()));

    [Fact]
    public void Slurm_options_split_like_a_shell()
    {
        Assert.Equal(["--gres=gpu:1", "--time=2:00:00", "--comment=two words", "--x=it's"],
                     Slurm.SplitOptions("--gres=gpu:1  --time=2:00:00 \"--comment=two words\" --x=it\\'s"));
        Assert.Empty(Slurm.SplitOptions("  "));
        Assert.Throws<BadInputException>(() => Slurm.SplitOptions("--comment='open"));
    }

    [Fact]
    public void A_model_axis_takes_every_registered_family_and_labels_runs_by_it()
    {
        var plan = Plan(false, "model=vae,sigma-vae,vq-vae");
        var entries = plan.Entries();
        Assert.Equal(["model=vae", "model=sigma-vae", "model=vq-vae"], entries.Select(e => e.Label));
        Assert.Equal(["vae", "sigma-vae", "vq-vae"], entries.Select(e => e.Model));
        Assert.Equal(["vae", "sigma-vae", "vq-vae"], entries.Select(e => plan.ConfigFor(e).Model.Kind));
        var e = Assert.Throws<BadInputException>(() => Plan(false, "model=vae,banana"));
        Assert.Contains("sigma-vae", e.Message);                  // names the families there are
    }

    [Fact]
    public void Family_options_are_grid_keys_validated_by_the_family()
    {
        var plan = new SweepPlan
        {
            Name = "g",
            Base = new RunConfig { Name = "g", Model = Presets.Tiny with { Kind = ModelKinds.SigmaVae }, Train = new TrainConfig(), Data = new DataConfig() },
            Axes = [SweepGrid.ParseAxis("model_option.sigma=optimal,learned")],
            IncludeAe = true,
        }.Validate();
        var entries = plan.Entries();
        Assert.Equal(["sigma-optimal", "sigma-learned", "ae"], entries.Select(e => e.RunName));
        // A family other than vae is named in the label when no model axis says it.
        Assert.Equal(["sigma-vae model_option.sigma=optimal", "sigma-vae model_option.sigma=learned", "AE"], entries.Select(e => e.Label));
        Assert.Equal("learned", plan.ConfigFor(entries[1]).Model.Options!["sigma"]!.GetValue<string>());
        Assert.Null(plan.ConfigFor(entries[2]).Model.Options);          // the AE row takes no family options
        Assert.Equal(ModelKinds.Ae, plan.ConfigFor(entries[2]).Model.Kind);

        var vq = Plan(false, "model=vq-vae", "model_option.codebook=16,64");
        Assert.Equal(64L, vq.ConfigFor(vq.Entries()[1]).Model.Options!["codebook"]!.GetValue<long>());   // numbers stay numbers

        var bad = Assert.Throws<BadInputException>(() => Plan(false, "model=sigma-vae", "model_option.sigma=banana"));
        Assert.Contains("model.options.sigma must be optimal or learned", bad.Message);
        var none = Assert.Throws<BadInputException>(() => Plan(false, "model_option.beta=0.1,0.2"));
        Assert.Contains("ae and vae take no model options", none.Message);
    }

    [Theory]
    [InlineData("--grid", "depth=1,2", "Valid keys: kl_weight, free_bits, kl_schedule, model, latent")]
    [InlineData("--grid", "latent=16,x", "not a whole number")]
    [InlineData("--grid", "latent", "KEY=V1,V2")]
    [InlineData("--grid", "latent=16,16", "twice")]
    [InlineData("--grid", "widths=16x0", "x between stages")]
    [InlineData("--grid", "model=ae,vae", "model=ae runs have no KL term")]
    [InlineData("--grid", "model=vae,banana", "not a model family: ae, sigma-vae, vae, vq-vae")]
    [InlineData("--grid", "batch_size=1", "--batch-size must be at least 2")]
    [InlineData("--latent", "8", "--latent and the latent axis")]
    [InlineData("--slurm-opts", "--time=1", "only makes sense with --slurm")]
    [InlineData("--dir", "x", "leave out --grid")]
    public void Bad_grids_are_refused_before_anything_runs(string flag, string value, string hint)
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("sweep", "--kl-weights", "1", "--grid", "latent=8,16", flag, value, "--sweeps-dir", dir["sweeps"]);
        Assert.True(exit == 2, error);
        Assert.Contains(hint, error);
        Assert.False(Directory.Exists(dir["sweeps"]));
    }

    [Theory]
    [InlineData("--collect", "needs --dir")]
    [InlineData("--with-ae", "Give the grid")]
    public void A_sweep_without_a_grid_or_a_directory_is_refused(string flag, string hint)
    {
        var (exit, _, error) = CliRunner.Run("sweep", flag);
        Assert.Equal(2, exit);
        Assert.Contains(hint, error);
    }

    [Fact]
    public void Collecting_a_directory_that_is_no_sweep_says_so()
    {
        using var dir = new TempDir();
        var (exit, _, error) = CliRunner.Run("sweep", "--collect", "--dir", dir.Path);
        Assert.Equal(2, exit);
        Assert.Contains("plan.json is missing", error);
    }
}
