using SkiaSharp;
using VaeKit.Data;

namespace VaeKit.Tests.Data;

public sealed class SplitTests : IDisposable
{
    private const int Count = 20;
    private readonly DataTempDir _dir = new();
    private readonly string _root;

    public SplitTests()
    {
        // Image i is a solid colour with red = 10·i, so every decoded image says which file it came from.
        _root = Path.Join(_dir.Path, "photos");
        TestImages.WriteFolder(_root, Enumerable.Range(0, Count).ToDictionary(i => $"{i:D2}.png", i => TestImages.Solid(4, 4, new SKColor((byte)(10 * i), 0, 0))));
    }

    public void Dispose() => _dir.Dispose();

    private (int[] Train, int[] Validation) LoadSplit(int seed, double fraction = 0.2)
    {
        var options = new DataOptions { Source = new DataSpec.Folder(_root), ImageSize = 4, ValidationFraction = fraction, Seed = seed, CacheDirectory = Path.Join(_dir.Path, "cache") };
        using var data = DatasetLoader.Load(options);
        static int[] Ids(DecodedImages images) => Enumerable.Range(0, images.Count).Select(i => images.ImageSpan(i)[0] / 10).ToArray();
        return (Ids(data.Train), Ids(data.Validation));
    }

    [Fact]
    public void The_split_is_a_partition_in_source_order()
    {
        var (train, validation) = LoadSplit(seed: 1);
        Assert.Equal(4, validation.Length);                                   // round(20 · 0.2)
        Assert.Equal(Enumerable.Range(0, Count), train.Concat(validation).Order());
        Assert.Equal(train.Order(), train);
        Assert.Equal(validation.Order(), validation);
    }

    [Fact]
    public void The_same_seed_gives_the_same_split_and_another_seed_another()
    {
        var a = LoadSplit(seed: 7);
        var b = LoadSplit(seed: 7);   // second load comes from the cache: same split regardless
        Assert.Equal(a.Validation, b.Validation);
        Assert.Equal(a.Train, b.Train);
        var others = Enumerable.Range(8, 4).Select(s => LoadSplit(s).Validation).ToList();
        Assert.Contains(others, v => !v.SequenceEqual(a.Validation));
    }

    [Fact]
    public void Validation_size_rules()
    {
        Assert.Equal(0, DatasetSplit.ValidationCount(1, 0.5));     // a single image is all training
        Assert.Equal(0, DatasetSplit.ValidationCount(100, 0));
        Assert.Equal(1, DatasetSplit.ValidationCount(2, 0.01));    // at least one when asked for any
        Assert.Equal(5, DatasetSplit.ValidationCount(100, 0.05));
        Assert.Equal(3, DatasetSplit.ValidationCount(5, 0.5));     // 2.5 rounds away from zero
        Assert.Empty(LoadSplit(seed: 0, fraction: 0).Validation);
    }

    [Fact]
    public void A_fraction_that_leaves_no_training_images_is_bad_input()
    {
        var e = Assert.Throws<BadInputException>(() => LoadSplit(seed: 0, fraction: 0.99));
        Assert.Contains("smaller fraction", e.Message);
        Assert.Throws<BadInputException>(() => LoadSplit(seed: 0, fraction: 1));
        Assert.Throws<BadInputException>(() => LoadSplit(seed: 0, fraction: double.NaN));
    }

    [Fact]
    public void SplitMix64_matches_its_reference_output()
    {
        // First outputs for seed 1234567 from the reference C implementation (Vigna's splitmix64.c).
        var rng = new SplitMix64(1234567);
        Assert.Equal(6457827717110365317UL, rng.Next());
        Assert.Equal(3203168211198807973UL, rng.Next());
        Assert.Equal(9817491932198370423UL, rng.Next());
    }
}
