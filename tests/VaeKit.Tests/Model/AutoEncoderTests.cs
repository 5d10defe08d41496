using VaeKit.Config;
using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

public class AutoEncoderTests
{
    [Theory]
    [InlineData("bench-s", 675_363)]
    [InlineData("bench-m", 10_826_563)]
    public void Bench_presets_have_the_frozen_parameter_counts(string preset, long expected)
    {
        using var model = new AutoEncoder(Presets.Get(preset));
        Assert.Equal(expected, model.ParameterCount);
    }

    [Theory]
    [InlineData("tiny", 225_427)]      // the lab's "< 250k parameters" starting point
    [InlineData("small", 2_163_075)]
    [InlineData("base", 6_745_155)]
    [InlineData("large", 17_630_403)]  // the lab's "≤ 20M parameters" ceiling
    public void Presets_have_the_parameter_counts_the_readme_lists(string preset, long expected)
    {
        using var model = new AutoEncoder(Presets.Get(preset));
        Assert.Equal(expected, model.ParameterCount);
    }

    [Theory]
    [InlineData(ModelKinds.Vae, 3, 32, new[] { 8, 16, 32 }, 2)]
    [InlineData(ModelKinds.Ae, 1, 28, new[] { 4, 8, 8 }, 1)]
    [InlineData(ModelKinds.Vae, 3, 64, new[] { 4, 4, 8, 8 }, 0)]
    public void Forward_shapes_match_the_config(string kind, int channels, int size, int[] widths, int blocks)
    {
        using var scope = NewDisposeScope();
        var config = new ModelConfig { Kind = kind, InChannels = channels, ImageSize = size, Widths = widths, Blocks = blocks, Latent = 6 };
        using var model = new AutoEncoder(config);
        var x = rand(5, channels, size, size);

        var output = model.call(x);

        Assert.Equal(x.shape, output.Reconstruction.shape);
        Assert.Equal(new long[] { 5, 6 }, output.Code.shape);
        Assert.Equal(kind == ModelKinds.Vae, output.Posterior is GaussianPosterior);
        Assert.True(output.Reconstruction.min().item<float>() >= 0 && output.Reconstruction.max().item<float>() <= 1);
    }

    [Fact]
    public void Evaluation_decodes_the_mean_and_training_samples()
    {
        using var scope = NewDisposeScope();
        using var model = new AutoEncoder(new ModelConfig { Widths = [4, 8], ImageSize = 8, Latent = 3 });
        var x = rand(4, 3, 8, 8);

        model.eval();
        var evaluated = model.call(x);
        Assert.True(evaluated.Z.allclose(evaluated.Code));

        model.train();
        var trained = model.call(x);
        Assert.False(trained.Z.allclose(trained.Code));
    }

    [Fact]
    public void Group_norm_starts_as_identity_affine_not_garbage()
    {
        using var scope = NewDisposeScope();
        using var model = new AutoEncoder(new ModelConfig { Widths = [8, 16], ImageSize = 8, Norm = NormKind.Group, Groups = 4 });
        foreach (var (name, p) in model.named_parameters().Where(np => np.name.Contains("norm")))
        {
            float expected = name.EndsWith("weight") ? 1f : 0f;
            Assert.True(p.eq(expected).all().item<bool>(), $"{name} is not initialised to {expected}");
        }
        Assert.False(model.call(rand(2, 3, 8, 8)).Reconstruction.isnan().any().item<bool>());
    }

    [Fact]
    public void State_dict_keys_follow_the_documented_names()
    {
        using var model = new AutoEncoder(new ModelConfig { Widths = [4, 8], ImageSize = 8, Latent = 2 });
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("encoder.conv_in.weight", keys);
        Assert.Contains("encoder.stages.0.blocks.0.norm1.running_mean", keys);
        Assert.Contains("encoder.stages.0.downsample.weight", keys);
        Assert.Contains("project_latent.weight", keys);
        Assert.Contains("decoder.project.weight", keys);
        Assert.Contains("decoder.stages.0.upsample.weight", keys);
        Assert.Contains("decoder.conv_out.bias", keys);
        Assert.DoesNotContain(keys, k => k.Contains("k__BackingField") || k.Contains("_convIn"));
    }

    [Theory]
    [InlineData(30, new[] { 16, 32, 64 })]   // 30 is not a multiple of 4
    [InlineData(32, new int[0])]
    public void Impossible_architectures_are_bad_input(int size, int[] widths)
    {
        var config = new ModelConfig { ImageSize = size, Widths = widths };
        var e = Assert.Throws<BadInputException>(() => config.Validate());
        Assert.Contains("width", e.Message, StringComparison.OrdinalIgnoreCase);
    }
}
