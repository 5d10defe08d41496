using System.Text.Json;
using System.Text.Json.Serialization;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>The kinds of <see cref="CodeModel"/> (<see cref="CodeModelConfig.Kind"/>).</summary>
public static class CodeModelKinds
{
    /// <summary>A causal Transformer over the L flat positions (<see cref="CodeTransformer"/>).</summary>
    public const string Transformer = "transformer";
    /// <summary>A gated PixelCNN over the (h, w) code grid (<see cref="GatedPixelCnn"/>).</summary>
    public const string PixelCnn = "pixelcnn";

    /// <summary>Every kind, for messages.</summary>
    public static IReadOnlyList<string> All { get; } = [Transformer, PixelCnn];
}

/// <summary>
/// What a <see cref="CodeModel"/> is: its kind and sizes. Saved as JSON beside the weights (<see cref="CodeModels.Save"/>),
/// so a stored code model describes itself; <see cref="CodeModels.Create"/> builds from it.
/// </summary>
public sealed record CodeModelConfig
{
    /// <summary><see cref="CodeModelKinds.Transformer"/> or <see cref="CodeModelKinds.PixelCnn"/>.</summary>
    public string Kind { get; init; } = CodeModelKinds.Transformer;

    /// <summary>K, the number of codes (the VQ-VAE's codebook size).</summary>
    public int Codebook { get; init; }

    /// <summary>L, the code positions per image, in raster order.</summary>
    public int Positions { get; init; }

    /// <summary>Rows h of the code grid (pixelcnn only; h·w = L).</summary>
    public int? Height { get; init; }

    /// <summary>Columns w of the code grid (pixelcnn only; h·w = L).</summary>
    public int? Width { get; init; }

    /// <summary>Hidden size: the Transformer's model width, the PixelCNN's channels per stack.</summary>
    public int Channels { get; init; } = 128;

    /// <summary>Transformer blocks, or gated PixelCNN layers (the first is mask type A, the rest type B).</summary>
    public int Layers { get; init; } = 3;

    /// <summary>Attention heads (transformer only); must divide <see cref="Channels"/>.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Kernel size n of the PixelCNN's gated layers (odd, n × n receptive window per layer; pixelcnn only).</summary>
    public int Kernel { get; init; } = 3;

    /// <summary>Checks the sizes; throws <see cref="BadInputException"/> naming the offending value. Returns itself.</summary>
    public CodeModelConfig Validate()
    {
        if (!CodeModelKinds.All.Contains(Kind))
            throw new BadInputException($"Unknown code model kind '{Kind}'. Choose one of: {string.Join(", ", CodeModelKinds.All)}.");
        if (Codebook < 2) throw new BadInputException($"A code model needs a codebook of 2 or more codes (got {Codebook}).");
        if (Positions < 1) throw new BadInputException($"A code model needs 1 or more positions (got {Positions}).");
        if (Channels < 1 || Layers < 1) throw new BadInputException($"A code model needs positive channels and layers (got {Channels}, {Layers}).");
        if (Kind == CodeModelKinds.Transformer && (Heads < 1 || Channels % Heads != 0))
            throw new BadInputException($"The transformer's heads ({Heads}) must divide its channels ({Channels}).");
        if (Kind == CodeModelKinds.PixelCnn)
        {
            if (Height is not int h || Width is not int w || h < 1 || w < 1 || h * w != Positions)
                throw new BadInputException($"A pixelcnn needs a code grid height × width equal to its {Positions} positions (got {Height}×{Width}).");
            if (Kernel < 3 || Kernel % 2 == 0) throw new BadInputException($"The pixelcnn's kernel must be odd and 3 or more (got {Kernel}).");
        }
        return this;
    }

    /// <summary>The config as indented snake_case JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json.Indented);

    /// <summary>Reads a config written by <see cref="ToJson"/>; throws <see cref="BadInputException"/> when it cannot.</summary>
    public static CodeModelConfig FromJson(string json)
    {
        try
        {
            return (JsonSerializer.Deserialize<CodeModelConfig>(json, Json.Compact)
                    ?? throw new BadInputException("A code model config is empty.")).Validate();
        }
        catch (JsonException e)
        {
            throw new BadInputException($"A code model config cannot be read: {e.Message}", e);
        }
    }
}

/// <summary>
/// An autoregressive model of a VQ-VAE's L codes: forward maps indices (B, L) int64 in [0, K) to logits (B, L, K),
/// where the logits at position i depend only on the indices before i in raster order (causal), so
/// p(c) = Π_i softmax(logits_i)[c_i] and <see cref="Sample"/> draws one position at a time.
/// </summary>
public abstract class CodeModel : nn.Module<Tensor, Tensor>
{
    /// <param name="name">The module's name.</param>
    /// <param name="config">Its validated config.</param>
    protected CodeModel(string name, CodeModelConfig config) : base(name)
    {
        Config = config.Validate();
    }

    /// <summary>Its kind and sizes, as saved beside the weights.</summary>
    public CodeModelConfig Config { get; }

    /// <summary>L, the positions per image.</summary>
    public int Positions => Config.Positions;

    /// <summary>K, the number of codes.</summary>
    public int Codebook => Config.Codebook;

    /// <summary>Mean cross-entropy of <paramref name="indices"/> (B, L) under the model, in nats per code (a scalar with
    /// gradients: the training loss). Divide by ln 2 for bits per code (<see cref="BitsPerCode"/>).</summary>
    public Tensor Loss(Tensor indices)
    {
        using var scope = NewDisposeScope();
        var logits = call(indices);                                                   // (B, L, K)
        return CrossEntropy(logits, indices).MoveToOuterDisposeScope();
    }

    /// <summary>logits (B, L, K), indices (B, L) → the mean cross-entropy in nats per code (a scalar).</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor indices) =>
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), indices.reshape(-1));

    /// <summary>Nats per code → bits per code (÷ ln 2). A model that has learnt nothing scores log2(K).</summary>
    public static double BitsPerCode(double nats) => nats / Math.Log(2);

    /// <summary>Sequences drawn together by <see cref="Sample"/>, which bounds the activations held at once.</summary>
    public const int SampleChunk = 512;

    /// <summary>
    /// n code sequences (n, L) int64 on the CPU, drawn one position at a time in raster order: position i from
    /// softmax(logits_i / T) by a multinomial draw on <paramref name="generator"/> (null: the default CPU generator);
    /// T = 0 takes the most likely code. Runs without gradients in evaluation mode (the mode is restored after), in
    /// chunks of <see cref="SampleChunk"/> sequences; the same generator state gives the same samples.
    /// </summary>
    public Tensor Sample(long n, double temperature, Generator? generator)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "sample one or more sequences");
        if (!(temperature >= 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "the temperature must be 0 or more");
        bool wasTraining = training;
        eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var chunks = new List<Tensor>();
            for (long start = 0; start < n; start += SampleChunk)
                chunks.Add(SampleChunkOf(Math.Min(SampleChunk, n - start), temperature, generator));
            return cat(chunks, 0).MoveToOuterDisposeScope();                                // (n, L)
        }
        finally
        {
            train(wasTraining);
        }
    }

    /// <summary>n ≤ <see cref="SampleChunk"/> sequences (n, L) on the CPU; called inside no_grad and a dispose scope.</summary>
    private Tensor SampleChunkOf(long n, double temperature, Generator? generator)
    {
        var device = parameters().First().device;
        var indices = zeros(n, Positions, dtype: ScalarType.Int64, device: device);       // (n, L); positions ≥ i are ignored
        for (int i = 0; i < Positions; i++)
        {
            using var step = NewDisposeScope();
            var logits = call(indices).select(1, i).to(ScalarType.Float64).cpu();         // (n, K), depends on indices < i
            var code = temperature == 0
                ? logits.argmax(1)                                                          // (n)
                : multinomial(nn.functional.softmax(logits / temperature, 1), 1, generator: generator).squeeze(1);
            indices.select(1, i).copy_(code.to(device));
        }
        return indices.cpu();
    }
}

/// <summary>Builds code models and finds the right one for a VQ-VAE.</summary>
public static class CodeModels
{
    /// <summary>The network <paramref name="config"/> describes (freshly initialised).</summary>
    public static CodeModel Create(CodeModelConfig config) => config.Validate().Kind switch
    {
        CodeModelKinds.Transformer => new CodeTransformer(config),
        CodeModelKinds.PixelCnn => new GatedPixelCnn(config),
        var kind => throw new BadInputException($"Unknown code model kind '{kind}'. Choose one of: {string.Join(", ", CodeModelKinds.All)}."),
    };

    /// <summary>
    /// The default code model of <paramref name="model"/>: a small causal Transformer over the L positions for
    /// layout=flat, a gated PixelCNN over the (h, w) grid for layout=grid.
    /// </summary>
    public static CodeModelConfig For(VqVae model) => model.Grid is (int h, int w)
        ? new CodeModelConfig { Kind = CodeModelKinds.PixelCnn, Codebook = model.K, Positions = model.L, Height = h, Width = w, Channels = 64, Layers = 8 }
        : new CodeModelConfig { Kind = CodeModelKinds.Transformer, Codebook = model.K, Positions = model.L, Channels = 128, Layers = 3, Heads = 4 };

    /// <summary>Where <see cref="Save"/> puts the config of the weights at <paramref name="weightsPath"/>: the same name with .json.</summary>
    public static string ConfigPath(string weightsPath) => Path.ChangeExtension(weightsPath, ".json");

    /// <summary>Writes the weights (TorchSharp format) to <paramref name="weightsPath"/> and the config beside them
    /// (<see cref="ConfigPath"/>), each atomically.</summary>
    public static void Save(CodeModel model, string weightsPath)
    {
        AtomicFile.Write(weightsPath, stream =>
        {
            using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            model.save(writer);
        });
        Json.WriteAllTextAtomic(ConfigPath(weightsPath), model.Config.ToJson() + "\n");
    }

    /// <summary>Reads a code model written by <see cref="Save"/> (on the CPU).</summary>
    public static CodeModel Load(string weightsPath)
    {
        var configPath = ConfigPath(weightsPath);
        if (!File.Exists(weightsPath) || !File.Exists(configPath))
            throw new BadInputException($"No code model at {weightsPath} (it needs the weights and {Path.GetFileName(configPath)} beside them).");
        var model = Create(CodeModelConfig.FromJson(File.ReadAllText(configPath)));
        using var reader = new BinaryReader(File.OpenRead(weightsPath));
        model.load(reader);
        return model;
    }
}
