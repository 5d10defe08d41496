using System.Text.Json;
using TorchSharp.Modules;
using TorchSharp.Utils;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Layers;
using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// The options of <c>--model vq-vae</c> (<c>--model-option KEY=VALUE</c>, stored in config.json under model.options).
/// Null sizes are filled from the shape by <see cref="VqVaeFamily.Validate"/> and recorded.
/// </summary>
public sealed record VqVaeOptions
{
    /// <summary>K, the number of codebook vectors (<c>codebook=K</c>). Default: 256 for a latent of up to 64, else 512.</summary>
    public int? Codebook { get; init; }

    /// <summary>d, the size of one codebook vector (<c>code_dim=d</c>); must divide the latent z, which is read as
    /// L = z / d positions. Default for layout=flat: 4 for a latent of up to 64, else 8 (or the largest divisor of z
    /// below that); for layout=grid: z / (h·w), and a given d must equal it.</summary>
    public int? CodeDim { get; init; }

    /// <summary>
    /// Where the codes come from (<c>layout=flat|grid</c>, <see cref="VqLayouts"/>). flat (the default): a Linear maps
    /// the encoder's flattened features to z, read as L = z / d vectors. grid (van den Oord et al. 2017): a 1×1 conv
    /// maps the encoder's last feature map (c, h, w) to (d, h, w) and each of the L = h·w positions is quantised;
    /// the decoder starts from the (d, h, w) grid with a 1×1 conv back to c channels. With grid, z must be h·w·d.
    /// </summary>
    public string Layout { get; init; } = VqLayouts.Flat;

    /// <summary>β, the weight of the commitment term ‖z_e − sg(e)‖² (van den Oord et al. 2017 use 0.25).</summary>
    public double Beta { get; init; } = 0.25;

    /// <summary>γ of the exponential moving averages that move the codebook (their Appendix A.1).</summary>
    public double Decay { get; init; } = 0.99;

    /// <summary>ε of the Laplace smoothing of the EMA cluster sizes (keeps an unused code's division finite).</summary>
    public double Epsilon { get; init; } = 1e-5;

    /// <summary>Training steps a code may go unchosen before it is restarted on an encoder output of the batch; 0 = never.</summary>
    public int DeadAfter { get; init; } = 100;

    /// <summary>Training images (the first N of the split) whose codes fit the sampling prior at each epoch end.</summary>
    public int PriorImages { get; init; } = 20_000;

    internal static readonly string[] Keys = ["codebook", "code_dim", "layout", "beta", "decay", "epsilon", "dead_after", "prior_images"];
}

/// <summary>The VQ-VAE's code layouts (<see cref="VqVaeOptions.Layout"/>).</summary>
public static class VqLayouts
{
    /// <summary>One Linear from the flattened features to z = L·d; positions are slices of a vector (today's default).</summary>
    public const string Flat = "flat";
    /// <summary>One code per spatial position of the encoder's last feature map, L = h·w in raster order (the paper's layout).</summary>
    public const string Grid = "grid";

    /// <summary>Every layout, for messages.</summary>
    public static IReadOnlyList<string> All { get; } = [Flat, Grid];
}

/// <summary>
/// VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017) on the shared residual <see cref="Encoder"/> and
/// <see cref="Decoder"/>: project_latent maps the encoder's features to z_e (B, z), read as L = z / d vectors of size d;
/// each is replaced by its nearest codebook vector e_k (K × d), and the decoder sees the flat (B, L·d) result.
/// With layout=grid project_latent is a 1×1 conv on the last feature map, so the L = h·w vectors are its spatial
/// positions in raster order (the flat code holds position (r, c)'s d numbers at [(r·w + c)·d, (r·w + c + 1)·d)), and
/// the decoder's project is a 1×1 conv from the (d, h, w) grid. Gradients
/// pass the quantiser unchanged (straight-through); the codebook is not a parameter but a buffer moved by exponential
/// moving averages in training forward passes, with unused codes restarted on encoder outputs.
/// </summary>
/// <remarks>
/// Objective per image: Σ_pixels (x − x̂)² + β·‖z_e − sg(e)‖² (kl_weight and free bits do not apply). Quantisation runs
/// in fp32 whatever the compute precision. Sampling draws each position's code from a per-position categorical
/// fitted to the training images' codes at every epoch end (<see cref="FitPrior"/>); the positions are independent, so
/// samples are much weaker than under an autoregressive prior (the paper's PixelCNN). <see cref="Decode"/> snaps any
/// code to the codebook first, so interpolations and traversals decode codebook codes.
/// </remarks>
public sealed class VqVae : VaeModel
{
    [ComponentName(Name = "encoder")] private readonly Encoder _encoder;
    [ComponentName(Name = "project_latent")] private readonly nn.Module<Tensor, Tensor> _projectLatent;   // Linear (flat) or 1×1 Conv2d (grid)
    [ComponentName(Name = "decoder")] private readonly Decoder _decoder;

    // Buffers (saved by name, not trained): codebook (K, d), ema_count (K), ema_sum (K, d), steps_unused (K),
    // prior_counts (L, K). They live on the model itself, not on a leaf module, so a bf16 compute twin keeps them in fp32.
    private readonly long[]? _gridFeatures;   // (B, c, h, w) of the encoder's last feature map, layout=grid only

    private const string CodebookName = "codebook", EmaCountName = "ema_count", EmaSumName = "ema_sum",
                         UnusedName = "steps_unused", PriorName = "prior_counts";

    /// <param name="config">A validated config of kind vq-vae (build through <see cref="ModelFactory.Create"/>).</param>
    public VqVae(ModelConfig config) : base("VQ-VAE", config)
    {
        Options = config.OptionsAs<VqVaeOptions>();
        K = Options.Codebook ?? throw new ArgumentException("validate the config first (codebook size missing)", nameof(config));
        D = Options.CodeDim ?? throw new ArgumentException("validate the config first (code size missing)", nameof(config));
        L = config.Latent / D;
        _encoder = new Encoder(config);
        if (Options.Layout == VqLayouts.Grid)
        {
            int side = config.BottleneckSide;
            if (L != side * side)
                throw new ArgumentException($"validate the config first (grid of {side}×{side} with {L} positions)", nameof(config));
            Grid = (side, side);
            _gridFeatures = [-1, config.Widths[^1], side, side];
            _projectLatent = nn.Conv2d(config.Widths[^1], D, kernel_size: 1);
            _decoder = new Decoder(config, gridCodeDim: D);
        }
        else
        {
            _projectLatent = nn.Linear(config.FlatFeatures, config.Latent);
            _decoder = new Decoder(config);
        }
        RegisterComponents();
        register_buffer(CodebookName, randn(K, D).DetachFromDisposeScope());
        register_buffer(EmaCountName, zeros(K).DetachFromDisposeScope());
        register_buffer(EmaSumName, zeros(K, D).DetachFromDisposeScope());
        // Every code starts dead, so the first training step places the whole codebook on encoder outputs.
        register_buffer(UnusedName, full(K, (float)Math.Max(1, Options.DeadAfter)).DetachFromDisposeScope());
        register_buffer(PriorName, zeros(L, K).DetachFromDisposeScope());
    }

    /// <summary>The options in force (sizes filled in).</summary>
    public VqVaeOptions Options { get; }

    /// <summary>Codebook size K.</summary>
    public int K { get; }

    /// <summary>Size d of one codebook vector.</summary>
    public int D { get; }

    /// <summary>Positions L = z / d per image.</summary>
    public int L { get; }

    /// <summary>The code grid (h, w) with h·w = L for layout=grid (positions in raster order; a PixelCNN's shape);
    /// null for layout=flat.</summary>
    public (int Height, int Width)? Grid { get; }

    /// <summary>The codebook (K, d), fp32, on the model's device. A live buffer: do not dispose.</summary>
    public Tensor Codebook => get_buffer(CodebookName)!;

    /// <summary>Counts of each code at each position over the training images of the last fit, (L, K); zeros before it.</summary>
    public Tensor PriorCounts => get_buffer(PriorName)!;

    /// <summary>Whether <see cref="FitPrior"/> has run (a checkpoint written before the first epoch ended has no prior).</summary>
    public bool PriorFitted
    {
        get { using var sum = PriorCounts.sum(); return sum.item<float>() > 0; }
    }

    /// <inheritdoc/>
    public override bool IsVariational => false;

    /// <summary>
    /// (B, C, s, s) → the quantised code (B, L·d). In training mode the codebook's moving averages take this batch in
    /// (and dead codes are restarted), after the batch was quantised with the codebook as it stood.
    /// </summary>
    public override Posterior Encode(Tensor x)
    {
        var encoded = ProjectLatent(_encoder.call(x)).to(ScalarType.Float32);          // (B, z) z_e, fp32 for quantisation
        long b = encoded.shape[0];
        var flat = encoded.detach().view(-1, D);                                       // (B·L, d)
        var codebook = Codebook;
        var indices = VectorQuantiser.Nearest(flat, codebook);                         // (B·L)
        var quantised = codebook.index_select(0, indices).view(b, -1);                 // (B, z), a copy: updates below do not touch it
        if (training)
            VectorQuantiser.Update(codebook, get_buffer(EmaCountName)!, get_buffer(EmaSumName)!, get_buffer(UnusedName)!,
                                   flat, indices, Options.Decay, Options.Epsilon, Options.DeadAfter, Noise);
        return new QuantisedPosterior(encoded, quantised, indices.view(b, L), K);
    }

    /// <summary>(B, L·d) → (B, C, s, s) in (0, 1), each position's vector first snapped to its nearest codebook vector
    /// (straight-through, so gradients still reach the code).</summary>
    public override Tensor Decode(Tensor z)
    {
        var code = z.to(ScalarType.Float32);
        var codebook = Codebook;
        var snapped = codebook.index_select(0, VectorQuantiser.Nearest(code.detach().reshape(-1, D), codebook)).view(code.shape);
        return DecodeQuantised(VectorQuantiser.StraightThrough(code, snapped));
    }

    /// <summary>Training decodes the straight-through quantised code directly (it is on the codebook already).</summary>
    public override ModelOutput forward(Tensor x)
    {
        var posterior = Encode(x);
        var z = posterior.Sample(Noise);
        return new ModelOutput(DecodeQuantised(z), posterior, z);
    }

    private Tensor DecodeQuantised(Tensor z) => _decoder.call(z.to(ComputeType));

    /// <summary>The encoder's flat features (B, c·h·w) → z_e (B, z): a Linear (flat), or a 1×1 conv to (B, d, h, w)
    /// flattened position by position in raster order (grid).</summary>
    private Tensor ProjectLatent(Tensor features)
    {
        if (_gridFeatures is null) return _projectLatent.call(features);               // (B, z)
        using var scope = NewDisposeScope();
        var grid = _projectLatent.call(features.view(_gridFeatures));                  // (B, d, h, w)
        return grid.permute(0, 2, 3, 1).reshape(grid.shape[0], -1).MoveToOuterDisposeScope(); // (B, h·w·d)
    }

    /// <summary>The dtype the layers compute in (fp32, or bf16 in a compute twin); the codebook stays fp32.</summary>
    private ScalarType ComputeType => _projectLatent switch
    {
        Linear linear => linear.weight!.dtype,
        Conv2d conv => conv.weight!.dtype,
        _ => ScalarType.Float32,
    };

    /// <summary>
    /// Per image Σ_pixels (x − x̂)² + β·‖z_e − sg(e)‖², averaged over the batch. Reports reconstruction, commitment,
    /// perplexity (exp of the entropy of the batch's code usage: K when all codes are used equally; not in the loss) and mse.
    /// </summary>
    public override Objective Objective(ModelOutput output, Tensor x, LossContext context)
    {
        if (output.Posterior is not QuantisedPosterior posterior)
            throw new ArgumentException($"A VQ-VAE objective needs a {nameof(QuantisedPosterior)}, not {output.Posterior.GetType().Name}.", nameof(output));
        var reconstruction = Losses.SquaredErrorPerImage(output.Reconstruction, x);       // (B)
        var commitment = posterior.Commitment();                                           // (B)
        var loss = (reconstruction + Options.Beta * commitment).mean();
        return new Objective(loss,
        [
            (MetricNames.Reconstruction, reconstruction.mean()),
            (VqMetricNames.Commitment, commitment.mean()),
            (VqMetricNames.Perplexity, VectorQuantiser.Perplexity(posterior.Indices, K)),
            (MetricNames.Mse, reconstruction.detach().mean() / PixelsPerImage(x)),
        ]);
    }

    /// <summary>
    /// n codes from the fitted prior: each position's code drawn independently from its categorical (counts + 1,
    /// Laplace-smoothed), probabilities raised to 1/T and renormalised (T = 0: every position's most frequent code).
    /// Before any fit the categoricals are uniform.
    /// </summary>
    public override Tensor SamplePrior(long n, double temperature, Generator? generator, Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var smoothed = PriorCounts.cpu().to(ScalarType.Float64) + 1;                   // (L, K)
        Tensor indices;                                                                 // (n, L)
        if (temperature <= 0)
            indices = smoothed.argmax(1).unsqueeze(0).expand(n, -1);
        else
        {
            var probabilities = nn.functional.softmax(smoothed.log() / temperature, 1);
            indices = multinomial(probabilities, n, replacement: true, generator: generator).t();
        }
        var codes = Codebook.cpu().index_select(0, indices.reshape(-1)).view(n, Latent);
        return codes.to(device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Fits the sampling prior: counts of each code at each position over the first <see cref="VqVaeOptions.PriorImages"/>
    /// of <paramref name="images"/>, encoded in evaluation mode, replace <see cref="PriorCounts"/>. Leaves the model in
    /// evaluation mode.
    /// </summary>
    public void FitPrior(DecodedImages images, int batchSize, Device device)
    {
        int count = Math.Min(images.Count, Options.PriorImages);
        using var noGrad = no_grad();
        eval();
        using var counts = zeros(L, K, device: PriorCounts.device);
        for (int start = 0; start < count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, start, Math.Min(batchSize, count - start)), device);
            var indices = ((QuantisedPosterior)Encode(x)).Indices;                      // (B, L)
            counts.add_(nn.functional.one_hot(indices, K).sum([0]).to(ScalarType.Float32)); // (L, K)
        }
        PriorCounts.copy_(counts);
    }

    /// <summary>Fits the prior at every epoch end, before anything saves or draws samples.</summary>
    public override void EpochEnded(TrainingImages images) => FitPrior(images.Images, images.BatchSize, images.Device);

    /// <summary>A run stopped before its first epoch end still leaves a checkpoint that can sample; later stops keep
    /// the last epoch's fit (fitting costs a pass over the images, and Ctrl-C should be quick).</summary>
    public override void RunInterrupted(TrainingImages images)
    {
        if (!PriorFitted) FitPrior(images.Images, images.BatchSize, images.Device);
    }

    /// <inheritdoc/>
    public override string? Unsupported(ModelOperation operation) =>
        operation == ModelOperation.Sample && !PriorFitted
            ? "This vq-vae checkpoint has no fitted code prior yet (it was written before the first epoch ended); " +
              "resume the run to the end of an epoch, or sample from a later checkpoint."
            : null;

    /// <summary>Code usage over all evaluated images: perplexity, codes used, dead codes (never chosen).</summary>
    public override IReadOnlyList<CodeStatistic> CodeStatistics(Tensor codes)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var codebook = Codebook.cpu();
        var indices = VectorQuantiser.Nearest(codes.to(ScalarType.Float32).cpu().reshape(-1, D), codebook);
        var counts = bincount(indices, minlength: K).to(ScalarType.Float64);             // (K)
        double used = counts.gt(0).sum().item<long>();
        double perplexity = VectorQuantiser.Perplexity(indices, K).item<float>();
        return
        [
            new(VqMetricNames.CodePerplexity, perplexity, $"exp(entropy) of the code usage over all {L} positions of all images (at most K = {K})"),
            new(VqMetricNames.CodesUsed, used, $"codes chosen at least once, of K = {K}"),
            new(VqMetricNames.DeadCodes, K - used, "codes never chosen for these images"),
        ];
    }
}

/// <summary>The names of a VQ-VAE's reported numbers.</summary>
public static class VqMetricNames
{
    /// <summary>‖z_e − sg(e)‖² per image (its β-weighted value is in the loss).</summary>
    public const string Commitment = "commitment";
    /// <summary>exp(entropy) of the batch's code usage; K when every code is used equally often. Not in the loss.</summary>
    public const string Perplexity = "perplexity";
    /// <summary>Perplexity over all images of an evaluation (<c>vae eval</c>).</summary>
    public const string CodePerplexity = "code_perplexity";
    /// <summary>Codes chosen at least once in an evaluation.</summary>
    public const string CodesUsed = "codes_used";
    /// <summary>Codes never chosen in an evaluation.</summary>
    public const string DeadCodes = "dead_codes";
}

/// <summary>
/// q(z|x) of a VQ-VAE: a point at the quantised code. <see cref="Mode"/> and <see cref="Sample"/> are the
/// straight-through code z_e + sg(e − z_e) (value e, gradient to z_e); there is no regulariser (the commitment term is
/// in the model's objective, and EMA updates replace the codebook loss).
/// </summary>
public sealed class QuantisedPosterior : Posterior
{
    /// <param name="encoded">z_e (B, z) before quantisation.</param>
    /// <param name="quantised">e (B, z): the nearest codebook vectors.</param>
    /// <param name="indices">(B, L) the chosen codes.</param>
    /// <param name="codebookSize">K.</param>
    public QuantisedPosterior(Tensor encoded, Tensor quantised, Tensor indices, int codebookSize)
    {
        Encoded = encoded;
        Quantised = quantised;
        Indices = indices;
        CodebookSize = codebookSize;
        Mode = VectorQuantiser.StraightThrough(encoded, quantised);
    }

    /// <summary>z_e, (B, z).</summary>
    public Tensor Encoded { get; }

    /// <summary>e, (B, z), no gradient.</summary>
    public Tensor Quantised { get; }

    /// <summary>(B, L) int64.</summary>
    public Tensor Indices { get; }

    /// <summary>K, the number of codebook entries.</summary>
    public int CodebookSize { get; }

    /// <inheritdoc/>
    public override Tensor Mode { get; }

    /// <inheritdoc/>
    public override Tensor Sample(Generator? noise) => Mode;

    /// <summary>‖z_e − sg(e)‖² per image, (B).</summary>
    public Tensor Commitment() => VectorQuantiser.Commitment(Encoded, Quantised);

    /// <inheritdoc/>
    public override Posterior ToFloat32() =>
        Encoded.dtype == ScalarType.Float32 && Quantised.dtype == ScalarType.Float32
            ? this
            : new QuantisedPosterior(Encoded.to(ScalarType.Float32), Quantised.to(ScalarType.Float32), Indices, CodebookSize);
}

/// <summary>
/// The vector quantiser's maths on plain tensors (fp32): nearest codes, the straight-through estimator, the commitment
/// term, code-usage perplexity, and the EMA codebook update with dead-code restarts (van den Oord et al. 2017, §3.1
/// and Appendix A.1).
/// </summary>
public static class VectorQuantiser
{
    /// <summary>flat (N, d), codebook (K, d) → (N) index of the nearest code in Euclidean distance (ties: the lowest).</summary>
    public static Tensor Nearest(Tensor flat, Tensor codebook)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // ‖x − e‖² = ‖x‖² − 2 x·e + ‖e‖²; ‖x‖² is the same for every code.
        var distances = codebook.square().sum(1).unsqueeze(0) - 2 * flat.matmul(codebook.t());   // (N, K)
        return distances.argmin(1).MoveToOuterDisposeScope();
    }

    /// <summary>z_e + sg(e − z_e): the value of <paramref name="quantised"/>, the gradient of the identity to
    /// <paramref name="encoded"/>. Without gradients it is <paramref name="quantised"/> itself (exactly the codebook's values).</summary>
    public static Tensor StraightThrough(Tensor encoded, Tensor quantised) =>
        encoded.requires_grad ? encoded + (quantised - encoded).detach() : quantised;

    /// <summary>‖z_e − sg(e)‖² per image: encoded, quantised (B, z) → (B).</summary>
    public static Tensor Commitment(Tensor encoded, Tensor quantised) => (encoded - quantised.detach()).square().sum(1);

    /// <summary>Indices of any shape → exp(−Σ_k p_k log p_k), p the codes' frequencies (a scalar, no gradient).</summary>
    public static Tensor Perplexity(Tensor indices, int codebookSize)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var p = bincount(indices.reshape(-1), minlength: codebookSize).to(ScalarType.Float32) / indices.numel();
        return (-(p * p.clamp_min(1e-30).log()).sum()).exp().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One training step's codebook update, in place, without gradients. With n_k the batch's count of code k and s_k
    /// the sum of the vectors assigned to it: N_k ← γN_k + (1−γ)n_k, m_k ← γm_k + (1−γ)s_k, then e_k = m_k / Ñ_k with
    /// the Laplace-smoothed Ñ_k = (N_k + ε)/(ΣN + Kε)·ΣN. Then codes unchosen for <paramref name="deadAfter"/> steps
    /// in a row are restarted: e_k, m_k ← a vector of this batch drawn from <paramref name="noise"/>, N_k ← 1.
    /// </summary>
    /// <param name="codebook">e (K, d)</param>
    /// <param name="emaCount">N (K)</param>
    /// <param name="emaSum">m (K, d)</param>
    /// <param name="stepsUnused">(K) steps since each code was last chosen</param>
    /// <param name="flat">the batch's encoder outputs (N, d)</param>
    /// <param name="indices">their codes (N)</param>
    /// <param name="noise">CPU generator of the restarts; null = the default generator of the batch's device</param>
    public static void Update(Tensor codebook, Tensor emaCount, Tensor emaSum, Tensor stepsUnused, Tensor flat, Tensor indices,
                              double decay, double epsilon, int deadAfter, Generator? noise)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long k = codebook.shape[0];
        var assigned = nn.functional.one_hot(indices, k).to(ScalarType.Float32);        // (N, K)
        var counts = assigned.sum([0]);                                                    // (K) n_k
        var sums = assigned.t().matmul(flat);                                            // (K, d) s_k
        emaCount.mul_(decay).add_(counts, alpha: 1 - decay);
        emaSum.mul_(decay).add_(sums, alpha: 1 - decay);
        var total = emaCount.sum();
        var smoothed = (emaCount + epsilon) / (total + k * epsilon) * total;             // (K) Ñ_k
        codebook.copy_(emaSum / smoothed.unsqueeze(1));

        stepsUnused.copy_(where(counts.gt(0), zeros_like(stepsUnused), stepsUnused + 1));
        if (deadAfter <= 0) return;
        var dead = stepsUnused.ge(deadAfter);                                            // (K)
        // One draw per code every step, used or not: the generator's state after a step does not depend on the data.
        var pick = noise is null
            ? randint(0, flat.shape[0], [k], dtype: ScalarType.Int64, device: flat.device)
            : randint(0, flat.shape[0], [k], dtype: ScalarType.Int64, generator: noise).to(flat.device);
        var candidates = flat.index_select(0, pick);                                     // (K, d)
        var deadRows = dead.unsqueeze(1);
        codebook.copy_(where(deadRows, candidates, codebook));
        emaSum.copy_(where(deadRows, candidates, emaSum));
        emaCount.copy_(where(dead, ones_like(emaCount), emaCount));
        stepsUnused.copy_(where(dead, zeros_like(stepsUnused), stepsUnused));
    }
}

/// <summary>Builds <see cref="VqVae"/> for the kind vq-vae, filling the codebook size and code size from the shape.</summary>
public sealed class VqVaeFamily : IModelFamily
{
    /// <inheritdoc/>
    public IReadOnlyList<MetricInfo> Metrics { get; } = [new(VqMetricNames.Commitment, "Commitment (VQ-VAE)"), new(VqMetricNames.Perplexity, "Codebook perplexity (VQ-VAE)")];

    /// <inheritdoc/>
    public IReadOnlyList<string> Kinds { get; } = [ModelKinds.VqVae];

    /// <inheritdoc/>
    public string Description => "vq-vae: vector-quantised code (K × d codebook, EMA updates, straight-through), per-position categorical prior";

    /// <inheritdoc/>
    public ModelConfig Validate(ModelConfig config)
    {
        config.ValidateConvolutional();
        if (config.Options is not null)
            foreach (var (key, _) in config.Options)
                if (!VqVaeOptions.Keys.Contains(key))
                    throw new BadInputException($"{SettingKey.ModelOption(key)} is not a vq-vae option; its options are {string.Join(", ", VqVaeOptions.Keys)}.");
        VqVaeOptions options;
        try
        {
            options = config.OptionsAs<VqVaeOptions>();
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{Settings.Model.Options} of vq-vae cannot be read: {e.Message}", e);
        }
        if (!VqLayouts.All.Contains(options.Layout))
            throw new BadInputException($"{SettingKey.ModelOption("layout")} must be one of {string.Join(", ", VqLayouts.All)} (got '{options.Layout}').");
        int d = options.CodeDim ?? (options.Layout == VqLayouts.Grid ? GridCodeDim(config) : DefaultCodeDim(config.Latent));
        int k = options.Codebook ?? (config.Latent <= 64 ? 256 : 512);
        if (k < 2 || k > 65_536) throw new BadInputException($"{SettingKey.ModelOption("codebook")} must be between 2 and 65536 (got {k}).");
        if (d < 1 || config.Latent % d != 0)
            throw new BadInputException($"{SettingKey.ModelOption("code_dim")} must divide the latent size {config.Latent} (got {d}).");
        if (options.Layout == VqLayouts.Grid && config.Latent != GridPositions(config) * d)
        {
            int side = config.BottleneckSide, positions = GridPositions(config);
            throw new BadInputException(
                $"layout=grid quantises each of the {side}×{side} = {positions} positions of the encoder's last feature map, " +
                $"so the latent is {positions} × code_dim: {SettingKey.ModelOption("code_dim").Is(d)} needs {Settings.Model.Latent.Is(positions * d)} (got {Settings.Model.Latent.Is(config.Latent)}, " +
                $"which gives code_dim={config.Latent / positions}{(config.Latent % positions == 0 ? "" : " only if it were a multiple of " + positions)}).");
        }
        if (!(options.Beta >= 0) || double.IsInfinity(options.Beta)) throw new BadInputException($"{SettingKey.ModelOption("beta")} must be 0 or more (got {options.Beta}).");
        if (!(options.Decay >= 0 && options.Decay < 1)) throw new BadInputException($"{SettingKey.ModelOption("decay")} must be in [0, 1) (got {options.Decay}).");
        if (!(options.Epsilon > 0) || double.IsInfinity(options.Epsilon)) throw new BadInputException($"{SettingKey.ModelOption("epsilon")} must be positive (got {options.Epsilon}).");
        if (options.DeadAfter < 0) throw new BadInputException($"{SettingKey.ModelOption("dead_after")} must be 0 (never restart) or more (got {options.DeadAfter}).");
        if (options.PriorImages < 1) throw new BadInputException($"{SettingKey.ModelOption("prior_images")} must be positive (got {options.PriorImages}).");
        return config.WithOptions(options with { Codebook = k, CodeDim = d });
    }

    /// <inheritdoc/>
    public VaeModel Create(ModelConfig config) => new VqVae(config);

    /// <summary>L = h·w, the positions of the encoder's last feature map.</summary>
    private static int GridPositions(ModelConfig config) => config.BottleneckSide * config.BottleneckSide;

    /// <summary>layout=grid: d = z / (h·w); a latent that is not a multiple of h·w is refused, naming the nearest fits.</summary>
    private static int GridCodeDim(ModelConfig config)
    {
        int side = config.BottleneckSide, positions = GridPositions(config);
        if (config.Latent % positions != 0 || config.Latent < positions)
        {
            int below = Math.Max(1, config.Latent / positions) * positions, above = (config.Latent / positions + 1) * positions;
            throw new BadInputException(
                $"layout=grid quantises each of the {side}×{side} = {positions} positions of the encoder's last feature map, " +
                $"so the latent must be a multiple of {positions} (code_dim = latent / {positions}); got {Settings.Model.Latent.Is(config.Latent)}: " +
                $"use {Settings.Model.Latent.Is(below)}{(above != below ? $" or {above}" : "")}.");
        }
        return config.Latent / positions;
    }

    /// <summary>4 for a latent of up to 64, else 8; the largest divisor of z at most that.</summary>
    private static int DefaultCodeDim(int latent)
    {
        int d = latent <= 64 ? 4 : 8;
        while (latent % d != 0) d--;
        return d;
    }
}
