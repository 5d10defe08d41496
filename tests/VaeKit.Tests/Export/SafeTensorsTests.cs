using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using VaeKit.Config;
using VaeKit.Export;
using VaeKit.Tests.Cli;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Tests.Export;

public class SafeTensorsTests
{
    [Fact]
    public void Names_follow_the_pytorch_twins_sequential_positions()
    {
        // widths [4, 8], one block per stage. Twin: encoder = [conv_in, block, down, block, BN, SiLU, Flatten],
        // decoder = [block, up, block, BN, SiLU, conv_out, Sigmoid], project at the top level.
        using var model = new AutoEncoder(ExportFixture.Small);
        var map = PyTorchNames.Map(model.state_dict().Keys);
        Assert.Equal("encoder.0.weight", map["encoder.conv_in.weight"]);
        Assert.Equal("encoder.1.norm1.running_mean", map["encoder.stages.0.blocks.0.norm1.running_mean"]);
        Assert.Equal("encoder.2.weight", map["encoder.stages.0.downsample.weight"]);
        Assert.Equal("encoder.3.conv2.bias", map["encoder.stages.1.blocks.0.conv2.bias"]);
        Assert.Equal("encoder.4.running_var", map["encoder.norm_out.running_var"]);
        Assert.Equal("project_latent.weight", map["project_latent.weight"]);
        Assert.Equal("project.bias", map["decoder.project.bias"]);
        Assert.Equal("decoder.0.norm1.weight", map["decoder.stages.0.blocks.0.norm1.weight"]);
        Assert.Equal("decoder.1.weight", map["decoder.stages.0.upsample.weight"]);
        Assert.Equal("decoder.2.conv1.weight", map["decoder.stages.1.blocks.0.conv1.weight"]);
        Assert.Equal("decoder.3.weight", map["decoder.norm_out.weight"]);
        Assert.Equal("decoder.5.weight", map["decoder.conv_out.weight"]);
        Assert.Equal(map.Count, map.Values.Distinct().Count());
    }

    [Fact]
    public void Two_blocks_per_stage_shift_the_positions()
    {
        using var model = new AutoEncoder(ExportFixture.Small with { Blocks = 2 });
        var map = PyTorchNames.Map(model.state_dict().Keys);
        Assert.Equal("encoder.2.conv1.weight", map["encoder.stages.0.blocks.1.conv1.weight"]);
        Assert.Equal("encoder.3.weight", map["encoder.stages.0.downsample.weight"]);
        Assert.Equal("encoder.6.weight", map["encoder.norm_out.weight"]);
        Assert.Equal("decoder.2.weight", map["decoder.stages.0.upsample.weight"]);
        Assert.Equal("decoder.5.weight", map["decoder.norm_out.weight"]);
        Assert.Equal("decoder.7.bias", map["decoder.conv_out.bias"]);
    }

    [Fact]
    public void The_file_is_the_documented_format_with_the_tensors_bytes()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 3);
        SafeTensors.Save(model, dir["m.safetensors"], new Dictionary<string, string> { ["config"] = "{}" });

        var bytes = File.ReadAllBytes(dir["m.safetensors"]);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength).TrimEnd(' '));
        Assert.Equal("{}", header.RootElement.GetProperty("__metadata__").GetProperty("config").GetString());

        var state = model.state_dict();
        var names = PyTorchNames.Map(state.Keys);
        Assert.Equal(state.Count + 1, header.RootElement.EnumerateObject().Count());
        long dataStart = 8 + headerLength, end = 0;
        foreach (var (name, tensor) in state)
        {
            var entry = header.RootElement.GetProperty(names[name]);
            Assert.Equal(tensor.shape, entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
            var offsets = entry.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Assert.Equal(end, offsets[0]);   // contiguous, in state_dict order
            end = offsets[1];
            var raw = bytes.AsSpan((int)(dataStart + offsets[0]), (int)(offsets[1] - offsets[0]));
            if (tensor.dtype == ScalarType.Float32)
            {
                Assert.Equal("F32", entry.GetProperty("dtype").GetString());
                var expected = tensor.data<float>().ToArray();
                for (int i = 0; i < expected.Length; i++)
                    Assert.Equal(expected[i], BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(4 * i, 4)));
            }
            else
            {
                Assert.Equal("I64", entry.GetProperty("dtype").GetString());   // BatchNorm's num_batches_tracked
                Assert.Equal(tensor.item<long>(), BinaryPrimitives.ReadInt64LittleEndian(raw));
            }
        }
        Assert.Equal(bytes.Length, dataStart + end);
        Assert.Contains(state.Keys, k => k.EndsWith(".running_var"));
    }

    [Fact]
    public void Load_restores_a_model_exactly()
    {
        using var dir = new TempDir();
        using var source = ExportFixture.Model(ExportFixture.Small, seed: 3);
        SafeTensors.Save(source, dir["m.safetensors"]);
        using var target = ExportFixture.Model(ExportFixture.Small, seed: 4);
        using var x = rand(5, 3, 16, 16);
        var before = ExportFixture.Outputs(target, x).Reconstruction;
        Assert.False(before.equal(ExportFixture.Outputs(source, x).Reconstruction).all().item<bool>());

        SafeTensors.Load(target, dir["m.safetensors"]);
        foreach (var (name, tensor) in source.state_dict())
            Assert.True(tensor.equal(target.state_dict()[name]).all().item<bool>(), name);
        Assert.True(ExportFixture.Outputs(source, x).Reconstruction.equal(ExportFixture.Outputs(target, x).Reconstruction).all().item<bool>());
    }

    [Fact]
    public void Load_into_another_architecture_names_what_does_not_fit_and_changes_nothing()
    {
        using var dir = new TempDir();
        using var source = ExportFixture.Model(ExportFixture.Small, seed: 3);
        SafeTensors.Save(source, dir["m.safetensors"]);

        using var wider = new AutoEncoder(ExportFixture.Small with { Latent = 6 });
        var before = wider.state_dict()["project_latent.weight"].clone();
        var e = Assert.Throws<BadInputException>(() => SafeTensors.Load(wider, dir["m.safetensors"]));
        Assert.Contains("project_latent.weight is [8, 512] in the file, [12, 512] in the model", e.Message);
        Assert.Contains("project.weight is [512, 4] in the file, [512, 6] in the model", e.Message);
        Assert.True(before.equal(wider.state_dict()["project_latent.weight"]).all().item<bool>());

        using var deeper = new AutoEncoder(ExportFixture.Small with { Blocks = 2 });
        e = Assert.Throws<BadInputException>(() => SafeTensors.Load(deeper, dir["m.safetensors"]));
        Assert.Contains("missing encoder.", e.Message);
        Assert.Contains("unexpected encoder.", e.Message);

        var tensors = SafeTensors.ReadAll(dir["m.safetensors"]);
        tensors.Remove("decoder.5.bias");
        tensors["extra.weight"] = zeros(2);
        SafeTensors.Write(dir["edited.safetensors"], tensors.Select(p => (p.Key, p.Value)).ToList());
        using var same = new AutoEncoder(ExportFixture.Small);
        e = Assert.Throws<BadInputException>(() => SafeTensors.Load(same, dir["edited.safetensors"]));
        Assert.Contains("missing decoder.5.bias", e.Message);
        Assert.Contains("unexpected extra.weight", e.Message);
    }

    [Fact]
    public void A_cut_or_foreign_file_is_refused_with_one_message()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 3);
        SafeTensors.Save(model, dir["m.safetensors"]);
        var bytes = File.ReadAllBytes(dir["m.safetensors"]);
        File.WriteAllBytes(dir["cut.safetensors"], bytes[..^10]);
        File.WriteAllText(dir["text.safetensors"], "hello, this is not a tensor file");

        Assert.Contains("truncated", Assert.Throws<BadInputException>(() => SafeTensors.Load(model, dir["cut.safetensors"])).Message);
        Assert.Contains("not a valid safetensors file", Assert.Throws<BadInputException>(() => SafeTensors.ReadHeader(dir["text.safetensors"])).Message);
        Assert.Contains("No safetensors file", Assert.Throws<BadInputException>(() => SafeTensors.ReadHeader(dir["none.safetensors"])).Message);
    }

    [Fact]
    public void Vae_export_then_import_gives_a_run_that_reconstructs_like_the_original()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 3);
        string run = ExportFixture.Run(dir.Path, model, step: 7);

        var (exit, output, error) = CliRunner.Run("export", "--run", run, "--checkpoint", "last", "--format", "safetensors");
        Assert.True(exit == 0, error);
        string file = Path.Combine(run, "last.safetensors");
        Assert.Contains(file, output);
        var header = SafeTensors.ReadHeader(file);
        Assert.Equal("7", header.Metadata["step"]);
        var stored = JsonSerializer.Deserialize<RunConfig>(header.Metadata["config"], Json.Compact)!;
        Assert.Equal(ExportFixture.Small.Widths, stored.Model.Widths);

        (exit, output, error) = CliRunner.Run("import", "--safetensors", file, "--out", dir["imported"]);
        Assert.True(exit == 0, error);
        var (importedHeader, imported) = Checkpoint.LoadModel(Path.Combine(dir["imported"], "checkpoints", "last.ckpt"));
        using (imported)
        {
            Assert.Equal(0, importedHeader.Step);
            using var x = rand(4, 3, 16, 16);
            Assert.True(ExportFixture.Outputs(model, x).Reconstruction.equal(ExportFixture.Outputs(imported, x).Reconstruction).all().item<bool>());
        }
        (exit, _, error) = CliRunner.Run("sample", "--run", dir["imported"], "--n", "4", "--device", "cpu", "--out", dir["s.png"]);
        Assert.True(exit == 0, error);
        Assert.True(File.Exists(dir["s.png"]));

        (exit, _, error) = CliRunner.Run("import", "--safetensors", file, "--out", dir["imported"]);
        Assert.Equal(2, exit);
        Assert.Contains("already holds a run", error);
        (exit, _, error) = CliRunner.Run("export", "--run", run, "--format", "onnx");
        Assert.Equal(2, exit);
        Assert.Contains("--format safetensors", error);
    }

    [Fact]
    public void Import_of_a_file_without_vaekit_metadata_needs_and_takes_a_preset()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(Presets.BenchS with { InChannels = 1 }, seed: 3);
        SafeTensors.Save(model, dir["plain.safetensors"]);   // as PyTorch's save_file(state_dict) would: no metadata

        var (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["plain.safetensors"], "--out", dir["a"]);
        Assert.Equal(2, exit);
        Assert.Contains("--preset", error);
        (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["plain.safetensors"], "--out", dir["b"], "--preset", "tiny");
        Assert.Equal(2, exit);
        Assert.Contains("does not fit this model", error);
        (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["plain.safetensors"], "--out", dir["c"], "--preset", "bench-s");
        Assert.True(exit == 0, error);
        Assert.Equal(1, Checkpoint.ReadHeader(Path.Combine(dir["c"], "checkpoints", "last.ckpt")).Config.Model.InChannels);   // read from conv_in

        (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["plain.safetensors"], "--out", dir["d"], "--config", Path.Combine(dir["c"], "config.json"));
        Assert.True(exit == 0, error);   // a run's config.json gives the architecture too
        Assert.Equal(Presets.BenchS.Widths, Checkpoint.ReadHeader(Path.Combine(dir["d"], "checkpoints", "last.ckpt")).Config.Model.Widths);
    }
}
