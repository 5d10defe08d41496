using VaeKit.Data;

namespace VaeKit.Tests.Data;

// Only properties that hold for any SyntheticFaces drawing: the renderer itself is tested on its own branch.
public sealed class SyntheticTests : IDisposable
{
    private readonly DataTempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private DataOptions Options(int? channels = null) =>
        new() { Source = new DataSpec.Synthetic(40), ImageSize = 16, Channels = channels, Seed = 3, CacheDirectory = _dir.Path };

    [Fact]
    public void Synthetic_faces_are_rgb_split_and_cached()
    {
        using var first = DatasetLoader.Load(Options());
        var d = first.Description;
        Assert.Equal(("synthetic", "synthetic faces (40)", 3), (d.Kind, d.Source, d.Channels));
        Assert.Equal((38, 2, 40, 0), (d.TrainCount, d.ValidationCount, d.Decoded, d.Skipped));   // round(40 · 0.05) = 2

        using var second = DatasetLoader.Load(Options());
        Assert.True(second.Description.FromCache);
        Assert.Equal(TestImages.Bytes(first.Train), TestImages.Bytes(second.Train));
    }

    [Fact]
    public void Gray_synthetic_faces_are_the_luma_of_the_rgb_ones()
    {
        using var rgb = DatasetLoader.Load(Options() with { CacheDirectory = "" });
        using var gray = DatasetLoader.Load(Options(channels: 1) with { CacheDirectory = "" });
        Assert.Equal(1, gray.Train.Channels);
        var expected = new byte[16 * 16];
        ImageDecoder.RgbToGray(rgb.Train.ImageSpan(4), expected);
        Assert.Equal(expected, gray.Train.ImageSpan(4).ToArray());
    }

    [Fact]
    public void Loaded_sets_outlive_the_callers_dispose_scope()
    {
        LoadedDataset data;
        byte[] expected;
        using (TorchSharp.torch.NewDisposeScope())
        {
            data = DatasetLoader.Load(Options() with { CacheDirectory = "" });
            expected = TestImages.Bytes(data.Train);
        }
        using (data)
        {
            Assert.False(data.Train.Pixels.IsInvalid);
            Assert.Equal(expected, TestImages.Bytes(data.Train));
        }
    }
}
