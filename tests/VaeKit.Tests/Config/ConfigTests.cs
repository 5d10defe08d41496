using System.Text.Json;
using VaeKit.Config;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Config;

public class ConfigTests
{
    [Fact]
    public void Run_config_survives_a_json_round_trip()
    {
        var config = new RunConfig
        {
            Name = "round-trip",
            Preset = "small",
            Model = Presets.Small with { Kind = ModelKinds.Ae, Norm = NormKind.Group, Groups = 4, InChannels = 1 },
            Train = new TrainConfig { Epochs = 7, LearningRate = 3e-4, KlWeight = 0.25, Schedule = LrSchedule.Constant, MaxSteps = 99, GradClip = 0 },
            Data = new DataConfig { Source = "/data/archive.zip", Channels = 1, ValidationFraction = 0.1, Flip = true, Fingerprint = "abc" },
            Runtime = new RuntimeConfig { Device = "cpu", Threads = 2 },
        };

        string json = JsonSerializer.Serialize(config, Json.Indented);
        var back = JsonSerializer.Deserialize<RunConfig>(json, Json.Indented)!;

        Assert.Equal(json, JsonSerializer.Serialize(back, Json.Indented));   // records hold lists: compare as JSON
        Assert.Contains("\"kind\": \"ae\"", json);                           // snake_case keys and enum values
        Assert.Contains("\"kl_weight\": 0.25", json);
    }

    [Fact]
    public void Train_flags_land_in_config_json()
    {
        using var dir = new TempDir();
        var (exit, output, error) = CliRunner.Run("train", "--data", "synthetic:96", "--widths", "4,8", "--latent", "5", "--image-size", "16",
            "--model", "ae", "--lr", "0.01", "--kl-weight", "0.5", "--schedule", "constant", "--warmup", "3", "--flip", "--seed", "7",
            "--batch-size", "16", "--max-steps", "2", "--name", "flags", "--runs-dir", dir["runs"], "--cache-dir", dir["cache"], "--threads", "1");
        Assert.True(exit == 0, output + error);

        using var config = JsonDocument.Parse(File.ReadAllText(dir["runs/flags/config.json"]));
        var root = config.RootElement;
        Assert.Equal("ae", root.GetProperty("model").GetProperty("kind").GetString());
        Assert.Equal(5, root.GetProperty("model").GetProperty("latent").GetInt32());
        Assert.Equal(16, root.GetProperty("model").GetProperty("image_size").GetInt32());
        Assert.Equal(0.01, root.GetProperty("train").GetProperty("learning_rate").GetDouble());
        Assert.Equal(0.5, root.GetProperty("train").GetProperty("kl_weight").GetDouble());
        Assert.Equal("constant", root.GetProperty("train").GetProperty("schedule").GetString());
        Assert.Equal(7, root.GetProperty("train").GetProperty("seed").GetInt32());
        Assert.True(root.GetProperty("data").GetProperty("flip").GetBoolean());
        Assert.Equal("synthetic:96", root.GetProperty("data").GetProperty("source").GetString());
        Assert.Equal(1, root.GetProperty("runtime").GetProperty("threads").GetInt32());
    }
}
