using TorchSharp;
using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Tests.Data;

/// <summary>Data sets built from images already in memory (<see cref="LoadedDataset.FromImages"/>, <see cref="DecodedImages.FromFloat"/>).</summary>
public sealed class InMemoryDataTests
{
    /// <summary>20 gray 4×4 images; image i is filled with the value 10·i, so every image says which one it is.</summary>
    private static DecodedImages Numbered(int count = 20)
    {
        using var ids = arange(count, ScalarType.Int64).mul(10).to(ScalarType.Byte);
        return new DecodedImages(ids.view(count, 1, 1, 1).expand(count, 4, 4, 1).contiguous());
    }

    private static int[] Ids(DecodedImages images) => Enumerable.Range(0, images.Count).Select(i => images.ImageSpan(i)[0] / 10).ToArray();

    [Fact]
    public void Splits_like_the_loaders_and_describes_the_set()
    {
        using var all = Numbered();
        using var data = LoadedDataset.FromImages(all, validationFraction: 0.2, description: "my faces");
        int[] train = Ids(data.Train), validation = Ids(data.Validation);

        Assert.Equal(4, validation.Length);                                    // round(20 · 0.2), the loaders' rule
        Assert.Equal(Enumerable.Range(0, 20), train.Concat(validation).Order());
        Assert.Equal(train.Order(), train);                                   // both parts keep the original order
        var mask = DatasetSplit.ValidationMask(20, 0.2, VaeKit.Config.DataConfig.SplitSeed);
        Assert.Equal(Enumerable.Range(0, 20).Where(i => mask[i]), validation);   // the fixed split seed

        var d = data.Description;
        Assert.Equal(("my faces", LoadedDataset.InMemoryKind, 4, 1), (d.Source, d.Kind, d.ImageSize, d.Channels));
        Assert.Equal((16, 4, 20, 0), (d.TrainCount, d.ValidationCount, d.Decoded, d.Skipped));
        Assert.Equal(16, d.Fingerprint.Length);
        Assert.False(d.FromCache);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (byte)(10 * i)), Enumerable.Range(0, 20).Select(i => all.ImageSpan(i)[0]));   // the caller's set is untouched
    }

    [Fact]
    public void The_same_images_give_the_same_fingerprint_and_one_changed_pixel_another()
    {
        using var a = Numbered();
        using var b = Numbered();   // equal pixels, another tensor
        using var c = Numbered();
        c.ImageSpan(13)[7] ^= 1;    // one pixel of one image, off by one

        string Fingerprint(DecodedImages images)
        {
            using var data = LoadedDataset.FromImages(images);
            return data.Description.Fingerprint;
        }
        Assert.Equal(Fingerprint(a), Fingerprint(b));
        Assert.NotEqual(Fingerprint(a), Fingerprint(c));

        // Same bytes in another shape (20 4×4 images vs 80 2×2 ones) is another data set.
        using var reshaped = new DecodedImages(a.Pixels.reshape(80, 2, 2, 1).clone());
        Assert.NotEqual(Fingerprint(a), Fingerprint(reshaped));
    }

    [Fact]
    public void Float_images_in_the_model_layout_become_the_same_bytes()
    {
        using var bytes = Numbered();
        using var floats = bytes.Pixels.permute(0, 3, 1, 2).to(ScalarType.Float32).div(255f);   // (N, C, S, S) in [0, 1]
        using var back = DecodedImages.FromFloat(floats);
        Assert.Equal(bytes.Pixels.shape, back.Pixels.shape);
        Assert.True(bytes.Pixels.eq(back.Pixels).all().item<bool>());

        // 600 RGB images cross several conversion blocks; a value v becomes round(255 v): (k ± 0.3) / 255 → k.
        using var generator = new Generator(7);
        using var k = randint(0, 256, new long[] { 600, 3, 5, 5 }, generator: generator);
        using var jitter = rand(new long[] { 600, 3, 5, 5 }, dtype: ScalarType.Float64, generator: generator).sub(0.5).mul(0.6);
        using var rgb = k.to(ScalarType.Float64).add(jitter).clamp(0, 255).div(255);
        using var converted = DecodedImages.FromFloat(rgb);
        using var expected = k.to(ScalarType.Byte).permute(0, 2, 3, 1);
        Assert.True(converted.Pixels.eq(expected).all().item<bool>());
        using var data = LoadedDataset.FromImages(converted, 0.1);
        Assert.Equal((540, 60, 5, 3), (data.Train.Count, data.Validation.Count, data.Description.ImageSize, data.Description.Channels));
    }

    [Fact]
    public void Unusable_input_is_refused_with_a_reason()
    {
        using var scaled = full(new long[] { 2, 3, 4, 4 }, 200f);   // 0..255 floats, not divided
        Assert.Contains("[0, 1]", Assert.Throws<ArgumentException>(() => DecodedImages.FromFloat(scaled)).Message);
        using var channelsLast = zeros(2, 4, 4, 3);
        Assert.Throws<ArgumentException>(() => DecodedImages.FromFloat(channelsLast));

        using var all = Numbered(3);
        Assert.Contains("fraction", Assert.Throws<BadInputException>(() => LoadedDataset.FromImages(all, 1.0)).Message);
        using var none = new DecodedImages(zeros(new long[] { 0, 4, 4, 1 }, ScalarType.Byte));
        Assert.Throws<BadInputException>(() => LoadedDataset.FromImages(none));
    }
}
