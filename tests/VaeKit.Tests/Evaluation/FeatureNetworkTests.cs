using System.Security.Cryptography;
using System.Text.Json.Nodes;
using VaeKit.Data;
using VaeKit.Evaluation;

using static TorchSharp.torch;

namespace VaeKit.Tests.Evaluation;

/// <summary>The FD's feature networks: the shipped files, their records, the input contract and reproducible training.</summary>
public class FeatureNetworkTests
{
    [Theory]
    [InlineData("fashion-mnist", 1, 10)]
    [InlineData("faces", 3, 38)]
    public void A_shipped_network_matches_its_record_and_is_small(string name, int channels, int logits)
    {
        var record = JsonNode.Parse(FeatureNetwork.ShippedRecord(name))!;
        using var network = FeatureNetwork.Load(name);
        Assert.Equal($"shipped:{name}", network.Source);
        Assert.Equal(record["sha256"]!.GetValue<string>(), network.ContentHash);      // the weights are the ones recorded
        Assert.True(record["bytes"]!.GetValue<long>() <= 1 << 20, "a shipped network is at most 1 MB");
        Assert.Equal(channels, network.Spec.Channels);
        Assert.StartsWith("vae fd-net train --data " + name, record["command"]!.GetValue<string>());

        using var scope = NewDisposeScope();
        var x = rand(4, channels, 32, 32);
        Assert.Equal(new long[] { 4, 128 }, network.Features(x).shape);
        Assert.Equal(new long[] { 4, logits }, network.call(x).shape);
    }

    [FactRequiring(Package.FashionMnist)]
    public void The_shipped_fashion_mnist_network_classifies_the_held_out_t10k_images_as_its_record_says() =>
        HeldOutAccuracyMatchesTheRecord("fashion-mnist", minimum: 0.90);

    [Fact]
    public void The_shipped_faces_network_classifies_held_out_faces_as_its_record_says() =>
        HeldOutAccuracyMatchesTheRecord("faces", minimum: 0.75);

    /// <summary>The shipped weights, run again on the held-out images: every head's accuracy is the recorded one (to a
    /// few images in 10,000, which another CPU's rounding may flip) and above <paramref name="minimum"/>.</summary>
    private static void HeldOutAccuracyMatchesTheRecord(string name, double minimum)
    {
        var record = System.Text.Json.JsonSerializer.Deserialize<FeatureNetworkRecord>(FeatureNetwork.ShippedRecord(name), Json.Indented)!;
        using var network = FeatureNetwork.Load(name);
        var measured = FeatureNetworkTraining.TestAccuracy(network, record.Recipe);
        Assert.Equal(record.TestAccuracy.Keys.Order(), measured.Keys.Order());
        foreach (var (head, accuracy) in measured)
        {
            Assert.True(Math.Abs(accuracy - record.TestAccuracy[head]) <= 0.003, $"{name} {head}: measured {accuracy}, recorded {record.TestAccuracy[head]}");
            Assert.True(accuracy >= minimum, $"{name} {head}: {accuracy}");
        }
    }

    [Fact]
    public void The_faces_network_knows_the_attributes_of_faces_it_never_saw()
    {
        using var network = FeatureNetwork.Load("faces");
        using var faces = FeatureNetworkTraining.RenderFaces(seed: 77, count: 200, size: 32, CancellationToken.None);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = network.call(faces.Images.permute(0, 3, 1, 2).to_type(ScalarType.Float32) / 255);
        // Hair colour is the first head (15 classes): a viewer names it at a glance, and so should the network.
        var hair = logits.narrow(1, 0, FaceAttributes.HairColourNames.Count).argmax(1);
        double accuracy = hair.eq(faces.Labels[.., 0]).to_type(ScalarType.Float32).mean().item<float>();
        Assert.True(accuracy > 0.8, $"hair colour accuracy {accuracy}");
    }

    [Fact]
    public void Prepare_converts_channels_and_size_as_the_loader_does()
    {
        using var grey = FeatureNetwork.Load("fashion-mnist");
        using var rgb = FeatureNetwork.Load("faces");
        using var scope = NewDisposeScope();
        var colour = rand(2, 3, 64, 64);
        var asGrey = grey.Prepare(colour);
        Assert.Equal(new long[] { 2, 1, 32, 32 }, asGrey.shape);
        // 64 → 32 is an exact 2×2 box filter of the luminance (rounded to 1/255 first).
        var q = (colour * 255).round() / 255;
        var luminance = 0.299f * q[.., 0] + 0.587f * q[.., 1] + 0.114f * q[.., 2];
        var expected = nn.functional.avg_pool2d(luminance.unsqueeze(1), 2);
        Assert.True(asGrey.allclose(expected, atol: 1e-5));
        var fromGrey = rgb.Prepare(rand(2, 1, 32, 32));
        Assert.Equal(new long[] { 2, 3, 32, 32 }, fromGrey.shape);
        Assert.Equal(0f, (fromGrey[.., 0] - fromGrey[.., 2]).abs().max().item<float>());
    }

    [Fact]
    public void A_file_that_is_not_a_feature_network_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        string path = dir["model.safetensors"];
        using (var scope = NewDisposeScope())
            VaeKit.Export.SafeTensors.Write(path, [("w", zeros(3))]);
        var e = Assert.Throws<BadInputException>(() => FeatureNetwork.Load(path));
        Assert.Contains("vaekit.fd_net", e.Message);
        Assert.Throws<BadInputException>(() => FeatureNetwork.Load(dir["missing.safetensors"]));
    }

    [Fact]
    public void Training_is_reproducible_and_a_saved_network_loads_as_itself()
    {
        using var dir = new TempDir();
        var recipe = new FeatureNetworkRecipe { Data = "faces", Epochs = 1, BatchSize = 32, WarmupSteps = 2, FaceTrainImages = 128, FaceTestImages = 32, Seed = 3 };
        var first = FeatureNetworkTraining.Train(recipe, dir["a"], "test");
        var second = FeatureNetworkTraining.Train(recipe, dir["b"], "test");
        Assert.Equal(first.Sha256, second.Sha256);                 // same recipe and threads → the same bytes
        Assert.Equal(first.Sha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(dir["a"], "fd-faces.safetensors")))));
        var other = FeatureNetworkTraining.Train(recipe with { Seed = 4 }, dir["c"], "test");
        Assert.NotEqual(first.Sha256, other.Sha256);

        using var loaded = FeatureNetwork.Load(Path.Combine(dir["a"], "fd-faces.safetensors"));
        Assert.Equal(first.Sha256, loaded.ContentHash);
        Assert.Equal(5, loaded.Spec.Heads.Count);
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(dir["a"], "fd-faces.json")))!["test_accuracy"]!["hair_colour"] is not null);
    }

    [Fact]
    public void Face_attributes_are_deterministic_and_cover_every_class()
    {
        Assert.Equal(SyntheticFaces.Attributes(5, 17), SyntheticFaces.Attributes(5, 17));
        var all = Enumerable.Range(0, 3000).Select(i => SyntheticFaces.Attributes(0, i).Labels).ToList();
        for (int head = 0; head < FaceAttributes.Heads.Count; head++)
            Assert.Equal(Enumerable.Range(0, FaceAttributes.Heads[head].Classes), all.Select(l => l[head]).Distinct().Order());
    }

    [FactRequiring(Package.FashionMnist)]
    public void Fashion_mnist_labels_are_read_and_balanced()
    {
        var labels = IdxReader.ReadLabels(Path.Join(DataSpec.DefaultFashionMnistDirectory, "t10k-labels-idx1-ubyte.gz"));
        Assert.Equal(10000, labels.Length);
        Assert.All(labels.GroupBy(l => l), g => Assert.Equal(1000, g.Count()));   // t10k holds 1,000 of each class
        var e = Assert.Throws<BadInputException>(() => IdxReader.ReadLabels(Path.Join(DataSpec.DefaultFashionMnistDirectory, "t10k-images-idx3-ubyte.gz")));
        Assert.Contains("not an IDX1 ubyte label file", e.Message);
    }
}
