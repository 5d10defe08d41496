using VaeKit.Data;

namespace VaeKit.Tests.Data;

public class DataSpecTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("synthetic")]
    [InlineData("SYNTHETIC")]
    public void Default_and_bare_synthetic_mean_8192_faces(string? text)
    {
        var spec = DataSpec.Parse(text);
        Assert.Equal(new DataSpec.Synthetic(8192), spec);
        Assert.Equal("synthetic faces (8192)", spec.Describe());
    }

    [Fact]
    public void Synthetic_takes_a_count() => Assert.Equal(new DataSpec.Synthetic(500), DataSpec.Parse("synthetic:500"));

    [Theory]
    [InlineData("synthetic:")]
    [InlineData("synthetic:0")]
    [InlineData("synthetic:-3")]
    [InlineData("synthetic:many")]
    [InlineData("synthetic:99999999999")]
    public void Synthetic_with_a_bad_count_is_rejected(string text)
    {
        var e = Assert.Throws<BadInputException>(() => DataSpec.Parse(text));
        Assert.Contains("synthetic:N", e.Message);
    }

    [Fact]
    public void Fashion_mnist_defaults_to_the_debian_package_folder()
    {
        Assert.Equal(new DataSpec.FashionMnist("/usr/share/datasets/fashion-mnist"), DataSpec.Parse("fashion-mnist"));
        Assert.Equal(new DataSpec.FashionMnist("/data/fm"), DataSpec.Parse("Fashion-MNIST:/data/fm"));
        Assert.Throws<BadInputException>(() => DataSpec.Parse("fashion-mnist:"));
    }

    [Fact]
    public void Existing_folder_and_zip_become_absolute_paths()
    {
        using var dir = new DataTempDir();
        string zip = dir.File("archive.ZIP");
        File.WriteAllBytes(zip, []);

        var folder = DataSpec.Parse(dir.Path + "/");
        Assert.Equal(new DataSpec.Folder(dir.Path + "/"), folder);
        Assert.Equal($"folder {dir.Path}/", folder.Describe());
        Assert.Equal(new DataSpec.Zip(zip), DataSpec.Parse(zip));
        Assert.Equal($"zip {zip}", DataSpec.Parse(zip).Describe());

        // relative paths resolve against the current directory
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, zip);
        Assert.Equal(new DataSpec.Zip(zip), DataSpec.Parse(relative));
    }

    [Fact]
    public void Missing_path_and_non_zip_file_are_rejected_naming_the_path()
    {
        using var dir = new DataTempDir();
        string missing = Path.Join(dir.Path, "nope");
        var e = Assert.Throws<BadInputException>(() => DataSpec.Parse(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("does not exist", e.Message);

        string text = dir.File("images.tar");
        File.WriteAllText(text, "x");
        e = Assert.Throws<BadInputException>(() => DataSpec.Parse(text));
        Assert.Contains(text, e.Message);
        Assert.Contains("neither a folder nor a .zip", e.Message);
    }
}
