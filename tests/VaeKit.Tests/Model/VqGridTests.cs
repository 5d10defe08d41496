using System.Text.Json.Nodes;
using TorchSharp;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Priors;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VaeKit.Tests.Model;

/// <summary>The VQ-VAE's layout=grid (one code per spatial position of the last feature map) against the flat layout.</summary>
public class VqGridTests(ITestOutputHelper output)
{
    // 16 px, three stages: the encoder's last feature map is 4 × 4, so a grid latent is 16·d.
    private static ModelConfig Shape(string kind, JsonObject? options = null, int latent = 32) => new ModelConfig
    {
        Kind = kind, ImageSize = 16, Widths = [4, 8, 8], Blocks = 1, Latent = latent, InChannels = 3, Options = options,
    };

    private static ModelConfig Grid(int latent = 32, int codebook = 16) =>
        Shape(ModelKinds.VqVae, new JsonObject { ["layout"] = "grid", ["codebook"] = codebook }, latent).Validate();

    private static VqVae Build(ModelConfig config, int seed = 3)
    {
        manual_seed(seed);
        return (VqVae)ModelFactory.Create(config);
    }

    private static Dictionary<string, long[]> Shapes(nn.Module module) =>
        module.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);

    private static long Count(nn.Module module) => module.parameters().Sum(p => p.numel());

    [Fact]
    public void The_flat_layout_keeps_the_autoencoders_weight_names_shapes_and_parameter_count()
    {
        // The flat VQ-VAE is the AE's network (encoder, project_latent Linear(F, z), decoder) with a codebook buffer.
        using var flat = Build(Presets.Tiny with { Kind = ModelKinds.VqVae, Options = null });
        using var ae = ModelFactory.Create((Presets.Tiny with { Kind = ModelKinds.Ae }).Validate());
        Assert.Null(flat.Grid);
        Assert.Equal(VqLayouts.Flat, flat.Options.Layout);
        Assert.Equal(Shapes(ae), Shapes(flat));
        Assert.Equal(Count(ae), Count(flat));
        Assert.Equal(new long[] { Presets.Tiny.Latent, Presets.Tiny.FlatFeatures }, Shapes(flat)["project_latent.weight"]);
        output.WriteLine($"tiny vq-vae, layout=flat: {Count(flat):N0} parameters, L = {flat.L}, d = {flat.D}, K = {flat.K}");
    }

    [Fact]
    public void The_grid_layout_has_the_same_weight_names_with_1x1_convs_in_place_of_the_linears()
    {
        var tiny = Presets.Tiny with { Kind = ModelKinds.VqVae };
        using var flat = Build(tiny.Validate());
        using var grid = Build((tiny with { Options = new JsonObject { ["layout"] = "grid" } }).Validate());
        var flatShapes = Shapes(flat);
        var gridShapes = Shapes(grid);
        Assert.Equal(flatShapes.Keys, gridShapes.Keys);
        Assert.Equal(flat.named_buffers().Select(b => b.name), grid.named_buffers().Select(b => b.name));

        // tiny: a 4 × 4 map of c = 32 channels, latent 32 → d = 2 at each of L = 16 positions.
        int c = tiny.Widths[^1], side = tiny.BottleneckSide, d = tiny.Latent / (side * side);
        Assert.Equal((side, side), grid.Grid);
        Assert.Equal(side * side, grid.L);
        Assert.Equal(d, grid.D);
        Assert.Equal(new long[] { d, c, 1, 1 }, gridShapes["project_latent.weight"]);
        Assert.Equal(new long[] { c, d, 1, 1 }, gridShapes["decoder.project.weight"]);
        foreach (var name in flatShapes.Keys.Where(n => !n.StartsWith("project_latent.") && !n.StartsWith("decoder.project.")))
            Assert.Equal(flatShapes[name], gridShapes[name]);

        long linears = (tiny.FlatFeatures * tiny.Latent + tiny.Latent) + (tiny.Latent * tiny.FlatFeatures + tiny.FlatFeatures);
        long convs = (c * d + d) + (d * c + c);
        Assert.Equal(Count(flat) - linears + convs, Count(grid));
        output.WriteLine($"tiny vq-vae: layout=flat {Count(flat):N0} parameters, layout=grid {Count(grid):N0} (grid {side}×{side}, d = {d}, K = {grid.K})");
    }

    [Fact]
    public void Grid_codes_are_flat_in_raster_order_and_spatial()
    {
        using var model = Build(Grid());
        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = rand(2, 3, 16, 16, generator: new Generator(1));
        var posterior = (QuantisedPosterior)model.Encode(x);
        Assert.Equal(new long[] { 2, 32 }, posterior.Mode.shape);                 // (B, L·d), L = 16, d = 2
        Assert.Equal(new long[] { 2, 16 }, posterior.Indices.shape);
        var (h, w) = model.Grid!.Value;

        // Changing the top-right corner of the image moves z_e most at the top-right position (0, w−1) and least at
        // the bottom-left one (h−1, 0): positions are spatial and run along rows.
        var moved = x.clone();
        moved[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(0, 4), TensorIndex.Slice(12, 16)] = 1;
        var change = (((QuantisedPosterior)model.Encode(moved)).Encoded - posterior.Encoded).square().view(2, h * w, 2).sum([0, 2]); // (L)
        int topRight = w - 1, bottomLeft = (h - 1) * w;
        Assert.Equal(topRight, change.argmax().item<long>());
        Assert.True(change[topRight].item<float>() > change[bottomLeft].item<float>());

        // Decoding: changing position (0, w−1)'s code changes the top-right of the image more than the bottom-left.
        var code = posterior.Mode.clone();
        var other = code.clone();
        other[TensorIndex.Colon, TensorIndex.Slice(topRight * 2, topRight * 2 + 2)] = model.Codebook[5];
        var diff = (model.Decode(other) - model.Decode(code)).square().sum([0, 1]);   // (16, 16)
        Assert.True(diff[TensorIndex.Slice(0, 8), TensorIndex.Slice(8, 16)].sum().item<float>() >
                    diff[TensorIndex.Slice(8, 16), TensorIndex.Slice(0, 8)].sum().item<float>());
    }

    [Fact]
    public void The_latent_of_a_grid_is_positions_times_code_dim_and_mismatches_are_refused()
    {
        var grid = Grid(latent: 64).OptionsAs<VqVaeOptions>();
        Assert.Equal(4, grid.CodeDim);                                            // 64 / 16, recorded
        Assert.Equal("grid", grid.Layout);

        var notMultiple = Assert.Throws<BadInputException>(() => Grid(latent: 40)).Message;
        Assert.Contains("multiple of 16", notMultiple);
        Assert.Contains("model.latent=32 or 48", notMultiple);              // the library names config keys; the CLI, its flags

        var mismatch = Assert.Throws<BadInputException>(() =>
            Shape(ModelKinds.VqVae, new JsonObject { ["layout"] = "grid", ["code_dim"] = 8 }, latent: 32).Validate()).Message;
        Assert.Contains("model.options.code_dim=8 needs model.latent=128", mismatch);

        var banana = Assert.Throws<BadInputException>(() =>
            Shape(ModelKinds.VqVae, new JsonObject { ["layout"] = "banana" }).Validate()).Message;
        Assert.Contains("flat, grid", banana);
        Assert.Contains("banana", banana);
        Assert.Contains("layout", Assert.Throws<BadInputException>(() =>
            Shape(ModelKinds.VqVae, new JsonObject { ["layuot"] = "grid" }).Validate()).Message);
    }

    [Fact]
    public void A_grid_model_trains_fits_its_prior_samples_and_counts_codes()
    {
        using var model = Build(Grid());
        using var scope = NewDisposeScope();
        var x = rand(8, 3, 16, 16, generator: new Generator(2));
        using var optimizer = optim.Adam(model.parameters(), lr: 1e-2);
        model.train();
        double first = 0, last = 0;
        for (int step = 0; step < 30; step++)
        {
            using var stepScope = NewDisposeScope();
            var outputs = model.call(x);
            var objective = model.Objective(outputs, x, new LossContext(KlWeight: 1));
            optimizer.zero_grad();
            objective.Loss.backward();
            optimizer.step();
            double loss = objective.Loss.item<float>();
            if (step == 0) first = loss;
            last = loss;
        }
        Assert.True(last < first, $"loss {first} → {last}");

        using var images = new DecodedImages((x.permute(0, 2, 3, 1) * 255).to_type(ScalarType.Byte));
        model.FitPrior(images, batchSize: 4, CPU);
        Assert.Equal(new long[] { 16, 16 }, model.PriorCounts.shape);            // (L, K)
        var samples = model.SamplePrior(5, 1.0, new Generator(3), CPU);            // (5, L·d)
        Assert.Equal(new long[] { 5, 32 }, samples.shape);
        Assert.Equal(new long[] { 5, 3, 16, 16 }, model.Decode(samples).shape);
        var statistics = model.CodeStatistics(samples).ToDictionary(s => s.Name, s => s.Value);
        Assert.Equal(16, statistics["codes_used"] + statistics["dead_codes"]);

        // Its autoregressive prior is a PixelCNN over the 4 × 4 grid; the flat layout's is a Transformer over L.
        var config = CodeModels.For(model);
        Assert.Equal(CodeModelKinds.PixelCnn, config.Kind);
        Assert.Equal((4, 4, 16, 16), (config.Height, config.Width, config.Positions, config.Codebook));
        using var flat = Build(Shape(ModelKinds.VqVae, new JsonObject { ["codebook"] = 16 }).Validate());
        var flatConfig = CodeModels.For(flat);
        Assert.Equal(CodeModelKinds.Transformer, flatConfig.Kind);
        Assert.Equal((flat.L, 16), (flatConfig.Positions, flatConfig.Codebook));
        using var prior = CodeModels.Create(config);
        Assert.Equal(new long[] { 2, 16 }, prior.Sample(2, 1.0, new Generator(1)).shape);
    }
}
