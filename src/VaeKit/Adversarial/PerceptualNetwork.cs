using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace VaeKit.Adversarial;

/// <summary>
/// A perceptual distance the user brings: a TorchScript module whose <c>forward(x, y)</c> takes two image batches
/// (B, C, s, s) in [0, 1] on the training device and returns a distance per image (B) (an LPIPS network exported with
/// <c>torch.jit.script</c> or <c>torch.jit.trace</c> fits). Its weights are frozen and it runs in evaluation mode; the
/// gradient flows through it to the reconstruction. The contract is checked on load with a probe batch.
/// </summary>
/// <remarks>
/// VaeKit's own Fréchet-distance feature networks are refused: training the decoder against the network that judges
/// it would lower the score without making the pictures better (docs/adversarial.md).
/// </remarks>
public sealed class PerceptualNetwork : IDisposable
{
    private readonly jit.ScriptModule _module;

    private PerceptualNetwork(jit.ScriptModule module, string path, string hash)
    {
        _module = module;
        Path = path;
        ContentHash = hash;
    }

    /// <summary>The file it was loaded from (full path).</summary>
    public string Path { get; }

    /// <summary>SHA-256 of the file, lower-case hex.</summary>
    public string ContentHash { get; }

    /// <summary>
    /// Loads <paramref name="path"/> onto <paramref name="device"/> and checks the contract on a probe batch of two
    /// images of <paramref name="channels"/> × <paramref name="imageSize"/>².
    /// </summary>
    /// <exception cref="BadInputException">Not a file, not TorchScript, an FD feature network, or a module that breaks
    /// the contract; the message says which.</exception>
    public static PerceptualNetwork Load(string path, Device device, int channels, int imageSize)
    {
        if (!File.Exists(path))
            throw new BadInputException($"{Settings.Train.PerceptualNet}: no file at {path}; give a TorchScript file (two image batches in [0, 1] → a distance per image).");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot read the perceptual network {path}: {e.Message}", e);
        }
        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (LooksLikeFdNetwork(bytes))
            throw new BadInputException(
                $"{Settings.Train.PerceptualNet} {path} is a Fréchet-distance feature network: training against the network that " +
                $"judges the result lowers its score without making the pictures better. Bring a separate network (e.g. LPIPS " +
                $"exported to TorchScript), or use the discriminator's own features ({Settings.Train.FeatureMatchingWeight}).");
        jit.ScriptModule module;
        try
        {
            module = jit.load(bytes, device);
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or ArgumentException or IOException)
        {
            throw new BadInputException(
                $"{Settings.Train.PerceptualNet} {path} is not a TorchScript module ({e.Message.Split('\n')[0]}); save it with " +
                $"torch.jit.script(net).save(PATH) or torch.jit.trace.", e);
        }
        var network = new PerceptualNetwork(module, System.IO.Path.GetFullPath(path), hash);
        try
        {
            module.eval();
            foreach (var p in module.parameters()) p.requires_grad_(false);
            network.Probe(device, channels, imageSize);
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>Distance per image (B) between <paramref name="x"/> and <paramref name="y"/>, both (B, C, s, s) in [0, 1].</summary>
    public Tensor Distance(Tensor x, Tensor y)
    {
        var result = _module.invoke("forward", x, y);
        return result as Tensor ?? throw new InvalidOperationException("the perceptual network returned no tensor");
    }

    /// <summary>Runs the contract on two random images: a tensor of shape (2) or (2, 1, …) out, finite, and a
    /// gradient that reaches the second input.</summary>
    private void Probe(Device device, int channels, int imageSize)
    {
        using var scope = NewDisposeScope();
        var x = rand([2, channels, imageSize, imageSize], device: device);
        var y = rand([2, channels, imageSize, imageSize], device: device).requires_grad_(true);
        Tensor d;
        try
        {
            d = Distance(x, y);
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or InvalidOperationException or InvalidCastException)
        {
            throw Broken($"calling forward(x, y) on two {channels}×{imageSize}×{imageSize} batches failed: {e.Message.Split('\n')[0]}");
        }
        if (d.dtype != ScalarType.Float32 && d.dtype != ScalarType.Float64)
            throw Broken($"forward returned {d.dtype}, not floating point numbers");
        if (d.numel() != 2 || d.shape[0] != 2)
            throw Broken($"forward returned shape [{string.Join(", ", d.shape)}], not one distance per image ([2] for two images)");
        if (!d.isfinite().all().item<bool>())
            throw Broken("forward returned a distance that is not finite");
        d.sum().backward();
        using var grad = y.grad;
        if (grad is null || !grad.isfinite().all().item<bool>())
            throw Broken("no finite gradient reaches the images through forward, so it cannot train a decoder");
    }

    private static BadInputException Broken(string why) =>
        new($"The perceptual network does not follow the contract (two image batches in [0, 1] → one distance per image): {why}.");

    /// <summary>A VaeKit FD network is a safetensors file carrying the feature-network spec in its metadata.</summary>
    private static bool LooksLikeFdNetwork(byte[] bytes)
    {
        if (bytes.Length < 8) return false;
        long headerLength = BitConverter.ToInt64(bytes, 0);
        if (headerLength <= 0 || headerLength > bytes.Length - 8) return false;
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)Math.Min(headerLength, 1 << 20));
        return header.Contains("\"vaekit.fd_net\"", StringComparison.Ordinal);
    }

    /// <inheritdoc/>
    public void Dispose() => _module.Dispose();
}
