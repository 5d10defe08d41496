using VaeKit.Data;

namespace VaeKit.Tests.Data;

public sealed class FashionMnistTests : IDisposable
{
    private readonly DataTempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [FactRequiring(Package.FashionMnist)]
    public void The_installed_set_loads_as_60000_train_and_10000_validation_gray_images()
    {
        var options = new DataOptions { Source = DataSpec.Parse("fashion-mnist"), ImageSize = 28, CacheDirectory = "" };
        using var data = DatasetLoader.Load(options);
        var d = data.Description;
        Assert.Equal((60000, 10000, 1, 28), (d.TrainCount, d.ValidationCount, d.Channels, d.ImageSize));
        Assert.Equal((60000, 10000), (data.Train.Count, data.Validation.Count));
        Assert.Equal(("fashion-mnist", 0), (d.Kind, d.Skipped));
        Assert.Equal(10000.0 / 70000, d.ValidationFraction, 6);
        // Fashion-MNIST is dark background with a bright garment: corners are black, the centre mostly is not.
        var first = data.Train.ImageSpan(0);
        Assert.Equal(0, first[0]);
        using (TorchSharp.torch.NewDisposeScope())
            Assert.InRange(data.Train.Pixels.to_type(TorchSharp.torch.ScalarType.Float32).mean().item<float>(), 50f, 100f);
    }

    [FactRequiring(Package.FashionMnist)]
    public void It_can_be_resized_and_made_rgb()
    {
        // Copy only the small t10k file twice (as train and t10k) to keep the test fast.
        string dir = _dir.File("fm/");
        File.Copy(Path.Join(DataSpec.DefaultFashionMnistDirectory, "t10k-images-idx3-ubyte.gz"), Path.Join(dir, "train-images-idx3-ubyte.gz"));
        File.Copy(Path.Join(DataSpec.DefaultFashionMnistDirectory, "t10k-images-idx3-ubyte.gz"), Path.Join(dir, "t10k-images-idx3-ubyte.gz"));
        var options = new DataOptions { Source = new DataSpec.FashionMnist(dir), ImageSize = 16, Channels = 3, CacheDirectory = "" };
        using var data = DatasetLoader.Load(options);
        Assert.Equal((10000, 16, 3), (data.Train.Count, data.Train.Size, data.Train.Channels));
        var image = data.Validation.ImageSpan(5);
        for (int p = 0; p < image.Length; p += 3) Assert.True(image[p] == image[p + 1] && image[p] == image[p + 2]);
    }

    [Fact]
    public void A_folder_without_the_files_says_how_to_install_them()
    {
        var e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(new DataOptions { Source = new DataSpec.FashionMnist(_dir.Path), CacheDirectory = "" }));
        Assert.Contains(_dir.Path, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);

        string missing = Path.Join(_dir.Path, "nothing-here");
        e = Assert.Throws<BadInputException>(() => DatasetLoader.Load(new DataOptions { Source = new DataSpec.FashionMnist(missing), CacheDirectory = "" }));
        Assert.Contains(missing, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }
}
