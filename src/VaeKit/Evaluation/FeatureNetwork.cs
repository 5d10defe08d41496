using System.Reflection;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Data;
using VaeKit.Export;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>One classification head of a <see cref="FeatureNetwork"/>: a name and its number of classes.</summary>
public sealed record FeatureHead(string Name, int Classes);

/// <summary>
/// The architecture of a <see cref="FeatureNetwork"/>, stored as JSON in its safetensors metadata under
/// <see cref="FeatureNetwork.MetadataKey"/>: everything needed to rebuild the module before loading its weights.
/// </summary>
public sealed record FeatureNetworkSpec
{
    /// <summary>What the network was trained on and what reports call it ("fashion-mnist", "faces", or a user's).</summary>
    public required string Name { get; init; }
    /// <summary>Input channels: 1 (grey) or 3 (RGB).</summary>
    public required int Channels { get; init; }
    /// <summary>Input side in pixels; images of another size are resized to it (<see cref="FeatureNetwork.Prepare"/>).</summary>
    public int ImageSize { get; init; } = 32;
    /// <summary>Output channels of each block; the last is the feature size.</summary>
    public int[] Widths { get; init; } = [32, 64, 128];
    /// <summary>The classification heads, whose logits are concatenated in this order by the final linear layer.</summary>
    public required IReadOnlyList<FeatureHead> Heads { get; init; }

    /// <summary>Size of the features the Fréchet distance is computed in: the last block's width.</summary>
    public int FeatureSize => Widths[^1];

    /// <summary>Checks the numbers; a user's file that breaks them is refused with the reason.</summary>
    /// <exception cref="BadInputException">A count or size out of range.</exception>
    public FeatureNetworkSpec Validate(string source)
    {
        if (Channels is not (1 or 3)) throw new BadInputException($"{source}: a feature network takes 1 or 3 channels, not {Channels}.");
        if (ImageSize < 8 || ImageSize % (1 << Widths.Length) != 0)
            throw new BadInputException($"{source}: the image size {ImageSize} must be at least 8 and divisible by 2^{Widths.Length} (one pooling per block).");
        if (Widths.Length == 0 || Widths.Any(w => w < 1)) throw new BadInputException($"{source}: the block widths must be positive.");
        if (Heads.Count == 0 || Heads.Any(h => h.Classes < 2)) throw new BadInputException($"{source}: every head needs at least 2 classes.");
        return this;
    }
}

/// <summary>
/// The fixed network whose features the image-space Fréchet distance compares: blocks of Conv3×3 → BatchNorm → ReLU →
/// 2×2 max-pool at widths 32, 64, 128, then a global average over positions. Those 128 numbers per image (the
/// penultimate layer) are the features; a linear layer on them gives each head's logits, which only training uses.
/// (B, C, 32, 32) in [0, 1] → features (B, 128).
/// </summary>
/// <remarks>
/// VaeKit ships two, trained by <c>vae fd-net train</c> (<see cref="FeatureNetworkTraining"/>): <c>fashion-mnist</c>
/// (10 classes) and <c>faces</c> (the five attributes of <see cref="FaceAttributes"/>). Any file with this layout can be
/// passed instead (docs/fd.md states the contract: the tensor names below and the spec under
/// <see cref="MetadataKey"/>), so a network trained in PyTorch on another data set works too. They are the default
/// because Inception (100 MB, trained on 299-px photographs) says little about 32-px cartoons and clothes; for numbers
/// comparable with papers, <see cref="TorchScriptFeatures"/> measures in Inception itself.
/// </remarks>
public sealed class FeatureNetwork : nn.Module<Tensor, Tensor>, IFeatureExtractor
{
    /// <summary>The safetensors metadata key holding the <see cref="FeatureNetworkSpec"/> as JSON.</summary>
    public const string MetadataKey = "vaekit.fd_net";

    /// <summary>The names of the networks shipped with VaeKit.</summary>
    public static IReadOnlyList<string> Shipped { get; } = ["fashion-mnist", "faces"];

    [ComponentName(Name = "blocks")] private readonly ModuleList<Sequential> _blocks;
    [ComponentName(Name = "head")] private readonly Linear _head;

    /// <summary>The architecture this module was built from.</summary>
    public FeatureNetworkSpec Spec { get; }

    /// <summary>Where the weights came from: "shipped:NAME" or a file path (reports state it).</summary>
    public string Source { get; private set; } = "untrained";

    /// <summary>SHA-256 of the file the weights were loaded from (hex); keys cached reference statistics.</summary>
    public string ContentHash { get; private set; } = "untrained";

    /// <summary>A freshly initialised network of <paramref name="spec"/> (initialised from the global torch seed).</summary>
    public FeatureNetwork(FeatureNetworkSpec spec) : base(nameof(FeatureNetwork))
    {
        Spec = spec.Validate("feature network");
        _blocks = new ModuleList<Sequential>();
        int inChannels = spec.Channels;
        foreach (int width in spec.Widths)
        {
            _blocks.Add(nn.Sequential(
                ("conv", nn.Conv2d(inChannels, width, kernel_size: 3, padding: 1, bias: false)),
                ("norm", nn.BatchNorm2d(width)),
                ("relu", nn.ReLU()),
                ("pool", nn.MaxPool2d(2))));
            inChannels = width;
        }
        _head = nn.Linear(spec.FeatureSize, spec.Heads.Sum(h => h.Classes));
        RegisterComponents();
    }

    /// <summary>x (B, C, S, S) in [0, 1] at the spec's size and channels → features (B, F): the penultimate layer.</summary>
    public Tensor Features(Tensor x)
    {
        var h = x;
        foreach (var block in _blocks) h = block.call(h);     // (B, w, S/2^i, S/2^i)
        return h.mean([2, 3]);                                // (B, F)
    }

    int IFeatureExtractor.Channels => Spec.Channels;
    int IFeatureExtractor.ImageSize => Spec.ImageSize;
    Device IFeatureExtractor.Device => parameters().First().device;

    /// <summary>Images as a model sees them (any channels and size, in [0, 1]) → features (B, F): <see cref="Prepare"/>
    /// then <see cref="Features"/>, in evaluation mode, without gradients.</summary>
    public Tensor FeaturesOf(Tensor images)
    {
        eval();
        using var noGrad = no_grad();
        return Features(Prepare(images));
    }

    /// <summary>x (B, C, S, S) → the heads' logits, concatenated (B, Σ classes).</summary>
    public override Tensor forward(Tensor x) => _head.call(Features(x));

    /// <summary>
    /// Images as a model sees them, (B, C', S', S') in [0, 1] on any device → the network's input (B, C, S, S): grey
    /// images are repeated into RGB for an RGB network, RGB images become luminance (ITU-R BT.601 weights, as the
    /// loader's grey conversion) for a grey one, and another size is area-resized to <see cref="FeatureNetworkSpec.ImageSize"/>
    /// (an exact box filter at integer factors, as the loader's downsampling). Values are first rounded to 1/255, so a
    /// generated image is measured as the 8-bit picture it would be saved as, like the real images it is compared to.
    /// </summary>
    public Tensor Prepare(Tensor images)
    {
        var x = (images.clamp(0, 1) * 255).round() / 255;
        long channels = x.shape[1];
        if (channels != Spec.Channels)
            x = Spec.Channels == 3
                ? x.expand(-1, 3, -1, -1)
                : (x * tensor(new[] { 0.299f, 0.587f, 0.114f }, device: x.device).view(1, 3, 1, 1).to_type(x.dtype)).sum(1, keepdim: true);
        if (x.shape[2] != Spec.ImageSize || x.shape[3] != Spec.ImageSize)
            x = x.shape[2] > Spec.ImageSize
                ? nn.functional.adaptive_avg_pool2d(x, [Spec.ImageSize, Spec.ImageSize])
                : nn.functional.interpolate(x, [Spec.ImageSize, Spec.ImageSize], mode: InterpolationMode.Bilinear, align_corners: false);
        return x;
    }

    /// <summary>Writes the weights (BatchNorm statistics included) and the spec, atomically.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>(extraMetadata ?? new Dictionary<string, string>())
        {
            [MetadataKey] = JsonSerializer.Serialize(Spec, Json.Compact),
        };
        SafeTensors.Save(this, path, metadata);
    }

    /// <summary>
    /// A shipped network by name (<see cref="Shipped"/>) or a file following the contract; in evaluation mode, on
    /// <paramref name="device"/>.
    /// </summary>
    /// <exception cref="BadInputException">Neither a shipped name nor a readable file of the contract.</exception>
    public static FeatureNetwork Load(string nameOrPath, Device? device = null)
    {
        byte[] bytes;
        string source, described;
        if (Shipped.Contains(nameOrPath))
        {
            using var stream = ShippedStream(nameOrPath, "safetensors");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            (bytes, source, described) = (copy.ToArray(), $"shipped:{nameOrPath}", $"the shipped {nameOrPath} feature network");
        }
        else
        {
            if (!File.Exists(nameOrPath))
                throw new BadInputException($"The feature network {nameOrPath} is neither a file nor a shipped network ({string.Join(", ", Shipped)}).");
            try
            {
                bytes = File.ReadAllBytes(nameOrPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"Cannot read the feature network {nameOrPath}: {e.Message}", e);
            }
            (source, described) = (Path.GetFullPath(nameOrPath), nameOrPath);
        }
        using var content = new MemoryStream(bytes, writable: false);
        var network = FromStream(content, described);
        network.Source = source;
        network.ContentHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        return network.Ready(device);
    }

    /// <summary>The record shipped beside a network (recipe, test accuracy, content hash), as JSON text.</summary>
    public static string ShippedRecord(string name)
    {
        using var stream = ShippedStream(name, "json");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static Stream ShippedStream(string name, string extension)
    {
        string resource = $"VaeKit.Resources.fd-{name}.{extension}";
        return Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
               ?? throw new InvalidOperationException($"the resource {resource} is missing from VaeKit.dll");
    }

    private static FeatureNetwork FromStream(Stream stream, string source)
    {
        var header = SafeTensors.ReadHeader(stream, source);
        if (!header.Metadata.TryGetValue(MetadataKey, out var json))
            throw new BadInputException($"{source} is not a feature network: its safetensors metadata has no \"{MetadataKey}\" entry (docs/fd.md gives the contract).");
        FeatureNetworkSpec spec;
        try
        {
            spec = JsonSerializer.Deserialize<FeatureNetworkSpec>(json, Json.Compact) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{source}: its \"{MetadataKey}\" metadata is not a valid spec ({e.Message}).", e);
        }
        spec.Validate(source);
        var network = new FeatureNetwork(spec);
        stream.Position = 0;
        SafeTensors.Load(network, stream, source);
        return network;
    }

    private FeatureNetwork Ready(Device? device)
    {
        if (device is not null) this.to(device);
        eval();
        return this;
    }
}
