using System.Security.Cryptography;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>
/// What the FD, the KID and precision/recall measure images in: a fixed network from images to feature vectors.
/// VaeKit's own small networks (<see cref="FeatureNetwork"/>) and TorchScript files of Inception's signature
/// (<see cref="TorchScriptFeatures"/>, the standard FID's network) both are one.
/// </summary>
public interface IFeatureExtractor : IDisposable
{
    /// <summary>Where it came from: "shipped:NAME" or a file's full path (reports state it).</summary>
    string Source { get; }

    /// <summary>SHA-256 (hex) of the file the weights came from; keys the cache of reference features.</summary>
    string ContentHash { get; }

    /// <summary>Channels of the images the network is trained on (1 or 3); the data are loaded so.</summary>
    int Channels { get; }

    /// <summary>The side the data are loaded at for <c>vae fd</c>; the network resizes whatever it is given.</summary>
    int ImageSize { get; }

    /// <summary>The device the network runs on.</summary>
    Device Device { get; }

    /// <summary>
    /// images (B, C, S, S) floats in [0, 1] on <see cref="Device"/>, any channels and size → features (B, F), without
    /// gradients. Each network converts channels and size its own way; every one first rounds the images to 8 bits,
    /// so a generated image is measured as the picture it would be saved as, like the real images it is compared to.
    /// </summary>
    Tensor FeaturesOf(Tensor images);
}

/// <summary>Finds the feature network a name or a path means.</summary>
public static class FeatureExtractors
{
    /// <summary>The name of the standard FID network (<see cref="TorchScriptFeatures.InceptionFile"/>).</summary>
    public const string Inception = "inception";

    /// <summary>
    /// A shipped network (<see cref="FeatureNetwork.Shipped"/>), <see cref="Inception"/> (the file of that name in
    /// <paramref name="cacheDirectory"/>), or a file: a TorchScript archive (a zip) of Inception's signature, else a
    /// safetensors feature network. On <paramref name="device"/>, in evaluation mode.
    /// </summary>
    /// <exception cref="BadInputException">Nothing usable by that name or at that path, with what to do.</exception>
    public static IFeatureExtractor Load(string nameOrPath, Device? device = null, string? cacheDirectory = null)
    {
        device ??= CPU;
        if (FeatureNetwork.Shipped.Contains(nameOrPath) && !File.Exists(nameOrPath)) return FeatureNetwork.Load(nameOrPath, device);
        if (nameOrPath == Inception && !File.Exists(nameOrPath))
        {
            string? cached = cacheDirectory is null ? null : Path.Combine(cacheDirectory, TorchScriptFeatures.InceptionFile);
            if (cached is null || !File.Exists(cached))
                throw new BadInputException(
                    $"The Inception network is not here{(cached is null ? "" : $" ({cached})")}: download {TorchScriptFeatures.InceptionUrl} " +
                    $"once and pass its path (--fd-net PATH, vae fd --net PATH){(cached is null ? "" : $" or put it at {cached}")}.");
            return TorchScriptFeatures.Load(cached, device);
        }
        if (File.Exists(nameOrPath) && IsZip(nameOrPath)) return TorchScriptFeatures.Load(nameOrPath, device);
        return FeatureNetwork.Load(nameOrPath, device);
    }

    /// <summary>TorchScript archives are zip files; safetensors files start with a little-endian header length.</summary>
    private static bool IsZip(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return stream.Read(magic) == 4 && magic.SequenceEqual("PK\u0003\u0004"u8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;   // FeatureNetwork.Load says why it cannot be read
        }
    }

    internal static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>
/// A TorchScript feature network of the signature StyleGAN2-ADA's and StyleGAN3's metric network has:
/// <c>forward(images, return_features: bool)</c>, images (B, 3, H, W) uint8 in 0..255 at any size (it resizes inside)
/// → with <c>return_features=True</c>, features (B, F) floats. Their <c>inception-2015-12-05.pt</c>, a direct
/// translation of the TensorFlow FID network, gives the 2,048 pool features of the standard FID (Heusel et al.
/// 2017), so the FD in it is the FID those papers and clean-fid's legacy mode report, at the same N and protocol.
/// </summary>
public sealed class TorchScriptFeatures : IFeatureExtractor
{
    /// <summary>The file name of the standard FID network.</summary>
    public const string InceptionFile = "inception-2015-12-05.pt";

    /// <summary>Where StyleGAN2-ADA's metric code downloads it from.</summary>
    public const string InceptionUrl = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt";

    private readonly jit.ScriptModule _module;

    private TorchScriptFeatures(jit.ScriptModule module, string source, string hash, Device device)
    {
        _module = module;
        Source = source;
        ContentHash = hash;
        Device = device;
    }

    /// <inheritdoc/>
    public string Source { get; }
    /// <inheritdoc/>
    public string ContentHash { get; }
    /// <inheritdoc/>
    public Device Device { get; }
    /// <summary>RGB: grey images are repeated into three channels, as FID code does.</summary>
    public int Channels => 3;
    /// <summary>32: VaeKit's images are measured at the size they are generated at; the network resizes them to 299.</summary>
    public int ImageSize => 32;

    /// <summary>Loads <paramref name="path"/> on <paramref name="device"/> and checks the signature on two images.</summary>
    /// <exception cref="BadInputException">Not a readable TorchScript file, or not of the signature.</exception>
    public static TorchScriptFeatures Load(string path, Device device)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot read the feature network {path}: {e.Message}", e);
        }
        jit.ScriptModule module;
        try
        {
            module = jit.load(bytes, device);
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or ArgumentException or IOException)
        {
            throw new BadInputException($"The feature network {path} is not a TorchScript module ({e.Message.Split('\n')[0]}).", e);
        }
        var network = new TorchScriptFeatures(module, Path.GetFullPath(path), FeatureExtractors.Sha256(bytes), device);
        try
        {
            module.eval();
            network.Probe();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public Tensor FeaturesOf(Tensor images)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var pixels = (images.clamp(0, 1) * 255).round().to_type(ScalarType.Byte);    // (B, C, S, S) uint8
        if (pixels.shape[1] == 1) pixels = pixels.expand(-1, 3, -1, -1).contiguous();
        var result = _module.invoke("forward", pixels, true) as Tensor
                     ?? throw new InvalidOperationException("the feature network returned no tensor");
        return result.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Two black 32-px images in: a finite float (2, F) out.</summary>
    private void Probe()
    {
        using var scope = NewDisposeScope();
        Tensor features;
        try
        {
            features = FeaturesOf(zeros([2, 3, 32, 32], device: Device));
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or InvalidOperationException or InvalidCastException)
        {
            throw Broken($"calling forward(images, True) on two 3×32×32 uint8 images failed: {e.Message.Split('\n')[0]}");
        }
        if (features.dim() != 2 || features.shape[0] != 2)
            throw Broken($"forward returned shape [{string.Join(", ", features.shape)}], not features (2, F) for two images");
        if (!features.isfinite().all().item<bool>())
            throw Broken("forward returned features that are not finite");
    }

    private BadInputException Broken(string why) =>
        new($"The feature network {Source} does not follow the contract (forward(uint8 images (B, 3, H, W), return_features: bool) → (B, F)): {why}.");

    /// <summary>Frees the module.</summary>
    public void Dispose() => _module.Dispose();
}
