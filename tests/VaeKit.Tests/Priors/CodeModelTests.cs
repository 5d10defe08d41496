using TorchSharp;
using VaeKit.Priors;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VaeKit.Tests.Priors;

/// <summary>The two autoregressive code models: causal, no blind spot, they learn a code distribution, sampling is seeded.</summary>
public class CodeModelTests(ITestOutputHelper output)
{
    private const int K = 8;

    private static CodeModelConfig Transformer(int positions = 12) => new()
    {
        Kind = CodeModelKinds.Transformer, Codebook = K, Positions = positions, Channels = 32, Layers = 2, Heads = 4,
    };

    private static CodeModelConfig PixelCnn(int height = 4, int width = 4, int layers = 6) => new()
    {
        Kind = CodeModelKinds.PixelCnn, Codebook = K, Positions = height * width, Height = height, Width = width,
        Channels = 16, Layers = layers,
    };

    public static TheoryData<string> Kinds => new() { CodeModelKinds.Transformer, CodeModelKinds.PixelCnn };

    private static CodeModelConfig ConfigOf(string kind) => kind == CodeModelKinds.Transformer ? Transformer() : PixelCnn();

    private static CodeModel Build(CodeModelConfig config, int seed = 3)
    {
        manual_seed(seed);
        return CodeModels.Create(config);
    }

    /// <summary>Which positions' logits change when the code at <paramref name="j"/> changes, over a few random contexts.</summary>
    private static bool[] Influenced(nn.Module<Tensor, Tensor> model, int positions, int j, int codebook = K)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(17);
        var indices = randint(0, codebook, [4, positions], generator: generator);            // (4, L)
        var changed = indices.clone();
        changed[TensorIndex.Colon, j] = (indices[TensorIndex.Colon, j] + 1).remainder(codebook);
        var difference = (model.call(changed) - model.call(indices)).abs().amax([0, 2]);    // (L)
        return difference.data<float>().ToArray().Select(d => d > 1e-6f).ToArray();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Changing_a_code_leaves_the_logits_at_it_and_before_it_unchanged(string kind)
    {
        var config = ConfigOf(kind);
        using var model = Build(config);
        model.eval();
        for (int j = 0; j < config.Positions; j++)
        {
            var influenced = Influenced(model, config.Positions, j);
            for (int i = 0; i <= j; i++)
                Assert.False(influenced[i], $"{kind}: the code at {j} changed the logits at {i}");
            if (j + 1 < config.Positions)
                Assert.True(influenced[j + 1], $"{kind}: the code at {j} does not reach the next position");
        }
    }

    [Fact]
    public void The_pixelcnn_sees_every_earlier_position_where_a_plain_masked_cnn_has_a_blind_spot()
    {
        const int side = 5, layers = 5;   // 5 layers of 3×3 reach 5 rows up and 5 columns left or right: the whole grid
        using var gated = Build(PixelCnn(side, side, layers));
        using var plain = new PlainMaskedCnn(K, 16, layers, side);
        gated.eval();
        int L = side * side, gatedMisses = 0, plainMisses = 0;
        var seen = new bool[L, L];                                                    // [j, i]: code j reaches logits i
        for (int j = 0; j < L; j++)
        {
            var g = Influenced(gated, L, j);
            var p = Influenced(plain, L, j);
            for (int i = j + 1; i < L; i++)
            {
                if (!g[i]) gatedMisses++;
                if (!p[i]) plainMisses++;
                seen[j, i] = g[i];
            }
        }
        output.WriteLine($"earlier positions not seen, of {L * (L - 1) / 2}: gated {gatedMisses}, plain masked {plainMisses}");
        Assert.Equal(0, gatedMisses);
        Assert.True(plainMisses > 0, "the plain masked CNN was expected to have a blind spot");
        // The classic blind spot: position (2, 1) of a plain 3×3 masked stack never sees (0, 4) (up and far right), the gated one does.
        Assert.True(seen[0 * side + 4, 2 * side + 1]);
        Assert.False(Influenced(plain, L, 0 * side + 4)[2 * side + 1]);
    }

    [Fact]
    public void The_pixelcnn_reach_grows_one_row_up_and_one_column_each_way_per_layer()
    {
        // Two 3×3 layers on a 6×6 grid: (4, 3) sees rows 2..3 at columns 1..5 and its own row at columns 1..2.
        const int side = 6;
        using var gated = Build(PixelCnn(side, side, layers: 2));
        gated.eval();
        int target = 4 * side + 3;
        for (int j = 0; j < target; j++)
        {
            int r = j / side, c = j % side;
            bool reachable = r == 4 ? c >= 3 - 2 : r >= 4 - 2 && Math.Abs(c - 3) <= 2;
            Assert.True(reachable == Influenced(gated, side * side, j)[target], $"position ({r}, {c}) reachable: {reachable}");
        }
    }

    /// <summary>Codes where each position is the previous one's + 1 (mod K), the first uniform: log2(K) / L bits per code at best.</summary>
    private static Tensor Successions(int n, int positions, Generator generator) =>
        (randint(0, K, [n, 1], generator: generator) + arange(positions, dtype: ScalarType.Int64).unsqueeze(0)).remainder(K);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void It_learns_a_code_succession_far_below_log2_K_bits_per_code(string kind)
    {
        var config = ConfigOf(kind);
        using var model = Build(config);
        var generator = new Generator(5);
        using var optimizer = optim.Adam(model.parameters(), lr: 3e-3);
        model.train();
        for (int step = 0; step < 300; step++)
        {
            using var scope = NewDisposeScope();
            var loss = model.Loss(Successions(32, config.Positions, generator));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
        model.eval();
        double bits;
        using (var scope = NewDisposeScope())
        using (no_grad())
            bits = CodeModel.BitsPerCode(model.Loss(Successions(256, config.Positions, generator)).item<float>());
        double floor = Math.Log2(K) / config.Positions;
        output.WriteLine($"{kind}: {bits:F3} bits per code after 300 steps (uniform {Math.Log2(K):F1}, best {floor:F3})");
        Assert.True(bits < 0.25 * Math.Log2(K), $"{kind}: {bits:F3} bits per code");

        // Its samples follow the rule.
        using var samples = model.Sample(64, 1.0, new Generator(9));
        var s = samples.data<long>().ToArray();
        int follow = 0, total = 0;
        for (int row = 0; row < 64; row++)
            for (int i = 1; i < config.Positions; i++, total++)
                if (s[row * config.Positions + i] == (s[row * config.Positions + i - 1] + 1) % K) follow++;
        output.WriteLine($"{kind}: {follow} of {total} sampled steps follow the rule");
        Assert.True(follow > 0.9 * total, $"{kind}: only {follow} of {total} sampled steps follow the rule");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Sampling_is_reproducible_by_seed(string kind)
    {
        var config = ConfigOf(kind);
        using var model = Build(config);
        using var scope = NewDisposeScope();
        var a = model.Sample(6, 1.0, new Generator(42));
        var b = model.Sample(6, 1.0, new Generator(42));
        var c = model.Sample(6, 1.0, new Generator(43));
        Assert.Equal(new long[] { 6, config.Positions }, a.shape);
        Assert.Equal(ScalarType.Int64, a.dtype);
        Assert.True(a.ge(0).all().item<bool>() && a.lt(K).all().item<bool>());
        Assert.Equal(a.data<long>().ToArray(), b.data<long>().ToArray());
        Assert.NotEqual(a.data<long>().ToArray(), c.data<long>().ToArray());
        // T = 0 is the most likely code at each step: the same sequence in every row, whatever the generator.
        var greedy = model.Sample(3, 0, new Generator(1)).data<long>().ToArray();
        Assert.Equal(greedy.Take(config.Positions), greedy.Skip(config.Positions).Take(config.Positions));
        Assert.Equal(greedy, model.Sample(3, 0, null).data<long>().ToArray());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_saved_code_model_loads_with_the_same_logits(string kind)
    {
        using var dir = new TempDir();
        var config = ConfigOf(kind);
        using var model = Build(config);
        var path = Path.Combine(dir.Path, "prior.dat");
        CodeModels.Save(model, path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "prior.json")));

        using var loaded = CodeModels.Load(path);
        Assert.Equal(config, loaded.Config);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        loaded.eval();
        var indices = randint(0, K, [2, config.Positions], generator: new Generator(3));
        Assert.True(model.call(indices).allclose(loaded.call(indices)));
    }

    [Theory]
    [InlineData("flat")]
    [InlineData("grid")]
    public void The_default_code_model_of_the_tiny_vq_vae_is_small_and_fits_its_codes(string layout)
    {
        var config = (VaeKit.Config.Presets.Tiny with
        {
            Kind = VaeKit.Config.ModelKinds.VqVae,
            Options = new System.Text.Json.Nodes.JsonObject { ["layout"] = layout },
        }).Validate();
        using var vq = (VaeKit.Models.VqVae)VaeKit.Models.ModelFactory.Create(config);
        var priorConfig = CodeModels.For(vq);
        using var prior = CodeModels.Create(priorConfig);
        long parameters = prior.parameters().Sum(p => p.numel());
        using var scope = NewDisposeScope();
        var indices = randint(0, vq.K, [64, vq.L], generator: new Generator(1));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var loss = prior.Loss(indices);
        loss.backward();
        output.WriteLine($"{layout}: {priorConfig.Kind} over L = {vq.L}, K = {vq.K}: {parameters:N0} parameters, " +
                         $"{loss.item<float>():F3} nats per code at the start (ln K = {Math.Log(vq.K):F3}), one batch-64 step {watch.ElapsedMilliseconds} ms");
        Assert.Equal(layout == "grid" ? CodeModelKinds.PixelCnn : CodeModelKinds.Transformer, priorConfig.Kind);
        Assert.InRange(parameters, 10_000, 1_000_000);                               // small enough for a 2-core CPU
        Assert.InRange(loss.item<float>(), 0.8 * Math.Log(vq.K), 1.2 * Math.Log(vq.K)); // starts near uniform
    }

    [Fact]
    public void A_bad_config_is_refused_naming_the_problem()
    {
        Assert.Contains("transformer, pixelcnn", Assert.Throws<BadInputException>(() => (Transformer() with { Kind = "banana" }).Validate()).Message);
        Assert.Contains("heads", Assert.Throws<BadInputException>(() => (Transformer() with { Heads = 3 }).Validate()).Message);
        Assert.Contains("grid", Assert.Throws<BadInputException>(() => (PixelCnn() with { Width = 3 }).Validate()).Message);
        Assert.Contains("kernel", Assert.Throws<BadInputException>(() => (PixelCnn() with { Kernel = 4 }).Validate()).Message);
    }

    /// <summary>
    /// The original PixelCNN's single stack (van den Oord et al. 2016a): 3×3 convs masked to the positions before the
    /// centre (type A), then including it (type B). It has the blind spot the gated stacks remove.
    /// </summary>
    private sealed class PlainMaskedCnn : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Embedding embedding;
        private readonly TorchSharp.Modules.ModuleList<TorchSharp.Modules.Conv2d> convs = new();
        private readonly TorchSharp.Modules.Conv2d head;
        private readonly Tensor maskA, maskB;
        private readonly int side;

        public PlainMaskedCnn(int codebook, int channels, int layers, int side) : base(nameof(PlainMaskedCnn))
        {
            this.side = side;
            manual_seed(4);
            embedding = nn.Embedding(codebook, channels);
            for (int i = 0; i < layers; i++) convs.Add(nn.Conv2d(channels, channels, kernel_size: 3, padding: 1));
            head = nn.Conv2d(channels, codebook, kernel_size: 1);
            // Raster-order masks of a 3×3 kernel: A keeps the 4 positions before the centre, B the centre too.
            maskA = tensor(new float[] { 1, 1, 1, 1, 0, 0, 0, 0, 0 }).view(1, 1, 3, 3);
            maskB = tensor(new float[] { 1, 1, 1, 1, 1, 0, 0, 0, 0 }).view(1, 1, 3, 3);
            RegisterComponents();
        }

        public override Tensor forward(Tensor indices)
        {
            using var scope = NewDisposeScope();
            var h = embedding.call(indices.view(-1, side, side)).permute(0, 3, 1, 2);
            for (int i = 0; i < convs.Count; i++)
            {
                var conv = convs[i];
                h = nn.functional.conv2d(h, conv.weight! * (i == 0 ? maskA : maskB), conv.bias, padding: [1, 1]);
                if (i > 0) h = h.relu();
            }
            return head.call(h).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
        }
    }
}
