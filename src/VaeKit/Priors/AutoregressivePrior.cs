using TorchSharp;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using VaeKit.Data;
using VaeKit.Models;
using VaeKit.Training;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>A <see cref="CodeModel"/> over a VQ-VAE's code indices, as an <see cref="IFittedPrior"/>: indices drawn one
/// position at a time, looked up in the codebook.</summary>
public sealed class AutoregressivePrior(CodeModel codes, VqVae model) : IFittedPrior
{
    /// <summary>The code model.</summary>
    public CodeModel Codes { get; } = codes;

    /// <inheritdoc/>
    public string Name => AutoregressivePriorKind.KindName;

    /// <inheritdoc/>
    public Tensor Sample(long n, double temperature, Generator? generator, Device device)
    {
        using var scope = NewDisposeScope();
        var indices = Codes.Sample(n, temperature, generator);                              // (n, L) on the CPU
        var flat = model.Codebook.cpu().index_select(0, indices.reshape(-1)).view(n, model.Latent);   // (n, L·d)
        return flat.to(device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose() => Codes.Dispose();
}

/// <summary>
/// <c>autoregressive</c> (vq-vae only): trains <see cref="CodeModels.For"/> on the code indices of the training images
/// as a run of its own in RUN/priors/autoregressive/: metrics.jsonl (train rows: loss in nats and bits per code; heldout
/// rows: bits per code on the validation split's codes), an atomic checkpoint.ckpt (weights, AdamW state, step) every
/// <see cref="PriorFitOptions.CheckpointEvery"/> steps and at the end, resumed automatically when an unfinished one of
/// the same VQ-VAE checkpoint is there; cancellation saves, then throws <see cref="OperationCanceledException"/>.
/// Each step's batch is drawn from a generator seeded by (seed, step), so an interrupted fit resumed to the end gives
/// the same weights as one never stopped.
/// </summary>
public sealed class AutoregressivePriorKind : IPriorKind
{
    /// <summary>The kind's name.</summary>
    public const string KindName = "autoregressive";
    /// <summary>Steps when --max-steps is not given.</summary>
    public const int DefaultSteps = 2000;
    /// <summary>The training checkpoint inside RUN/priors/autoregressive/.</summary>
    public const string CheckpointFile = "checkpoint.ckpt";
    /// <summary>The final weights (its config beside it, <see cref="CodeModels.Save"/>).</summary>
    public const string WeightsFile = "codes.dat";   // records written before each fit had a file of its own
    private const string WeightsStem = "codes";
    private const int HeldOutLimit = 4096;
    private static readonly byte[] Magic = "VAEKIT-PRIOR"u8.ToArray();
    private static readonly byte[] EndMarker = "END."u8.ToArray();

    /// <inheritdoc/>
    public string Name => KindName;

    /// <inheritdoc/>
    public SettingText? Inapplicable(VaeModel model)
    {
        if (model is VqVae) return null;
        return $"The autoregressive prior models a vq-vae's discrete codes; this run is a {model.Config.Kind}: use {Settings.Prior.Kind.Is(GaussianMixturePriorKind.KindName)}.";
    }

    /// <summary>The header of checkpoint.ckpt.</summary>
    private sealed record State
    {
        public required string CheckpointSha256 { get; init; }
        public long Step { get; init; }
        public int MaxSteps { get; init; }
        public int Seed { get; init; }
        public int BatchSize { get; init; }
        public double LearningRate { get; init; }
        public double ElapsedSeconds { get; init; }
        public required CodeModelConfig Config { get; init; }
    }

    /// <inheritdoc/>
    public (IFittedPrior Prior, JsonObject Settings, Dictionary<string, double> Figures) Fit(
        TrainedModel model, LoadedDataset data, string directory, PriorFitOptions options, CancellationToken cancellationToken)
    {
        var vq = (VqVae)model.Model;
        int maxSteps = options.MaxSteps ?? DefaultSteps;
        if (maxSteps < 1) throw new BadInputException($"{Settings.Prior.MaxSteps} must be 1 or more (got {maxSteps}).");
        if (options.CheckpointEvery < 1 || options.LogEvery < 1) throw new BadInputException("Checkpoint and log intervals must be positive.");
        string fingerprint = PriorKinds.Fingerprint(model.CheckpointPath);
        string checkpointPath = Path.Combine(directory, CheckpointFile);
        string metricsPath = Path.Combine(directory, "metrics.jsonl");
        var clock = Stopwatch.StartNew();

        using var train = PriorKinds.EncodeIndices(model, data.Train, options.BatchSize, cancellationToken: cancellationToken);    // (N, L) int64
        using var heldOut = data.Validation.Count > 0 ? PriorKinds.EncodeIndices(model, data.Validation, options.BatchSize, HeldOutLimit, cancellationToken) : null;

        State? resumed = options.Restart ? null : ReadState(checkpointPath);
        if (resumed is not null && (resumed.CheckpointSha256 != fingerprint || resumed.Seed != options.Seed || resumed.BatchSize != options.BatchSize))
            resumed = null;                                  // another VQ-VAE checkpoint or other settings: start over
        var config = resumed?.Config ?? CodeModels.For(vq);
        random.manual_seed(options.Seed);                    // the initial weights follow the seed
        var codes = CodeModels.Create(config);
        codes.to(model.Device);
        var named = codes.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        using var flat = new FlatParameters(named);
        using var optimizer = new FlatAdamW(flat, flat.Mask(slot => slot.Parameter.dim() > 1), 0.9, 0.999, 0.01);
        long step = 0;
        double elapsedBefore = 0;
        if (resumed is not null)
        {
            step = LoadState(checkpointPath, codes, optimizer);
            elapsedBefore = resumed.ElapsedSeconds;
            MetricsLog.TruncateForResume(metricsPath, step, 0);
        }
        else if (File.Exists(metricsPath))
        {
            File.Delete(metricsPath);
        }

        State Snapshot() => new()
        {
            CheckpointSha256 = fingerprint, Step = step, MaxSteps = maxSteps, Seed = options.Seed, BatchSize = options.BatchSize,
            LearningRate = options.LearningRate, ElapsedSeconds = elapsedBefore + clock.Elapsed.TotalSeconds, Config = config,
        };

        double lastBits = double.NaN, lastHeldOut = double.NaN;
        using (var metrics = new MetricsLog(metricsPath))
        {
            void Log(JsonObject row)
            {
                metrics.Write(row);
                options.OnRow?.Invoke(row);
            }

            codes.train();
            long n = train.shape[0];
            while (step < maxSteps)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    SaveState(checkpointPath, Snapshot(), codes, optimizer);
                    throw new PriorFitInterrupted($"the fit's state at step {step} of {maxSteps} is stored in {checkpointPath} (the earlier fit, if any, is " +
                                                  $"unchanged); continue with {PriorKinds.Refit(model, KindName)}");
                }
                using (var scope = NewDisposeScope())
                {
                    using var batchNoise = new Generator((ulong)options.Seed * 1_000_003UL + (ulong)step);
                    var rows = randint(n, [options.BatchSize], generator: batchNoise);                  // (B)
                    var batch = train.index_select(0, rows).to(model.Device);                          // (B, L)
                    optimizer.ZeroGrad();
                    var loss = codes.Loss(batch);                                                       // nats per code
                    loss.backward();
                    optimizer.Step(options.LearningRate);
                    step++;
                    if (step % options.LogEvery == 0 || step == maxSteps)
                    {
                        double nats = loss.item<float>();
                        lastBits = CodeModel.BitsPerCode(nats);
                        Log(new JsonObject { ["type"] = "train", ["step"] = step, ["loss"] = nats, ["bits_per_code"] = lastBits });
                    }
                }
                if (step % options.CheckpointEvery == 0 || step == maxSteps)
                {
                    if (heldOut is not null)
                    {
                        lastHeldOut = HeldOutBits(codes, heldOut, options.BatchSize, model.Device);
                        Log(new JsonObject { ["type"] = "heldout", ["step"] = step, ["heldout_bits_per_code"] = lastHeldOut });
                    }
                    SaveState(checkpointPath, Snapshot(), codes, optimizer);
                }
            }
        }
        if (double.IsNaN(lastHeldOut) && heldOut is not null) lastHeldOut = HeldOutBits(codes, heldOut, options.BatchSize, model.Device);
        codes.eval();
        codes.to(CPU);
        string weights = PriorKinds.NewFitFile(WeightsStem, ".dat");
        CodeModels.Save(codes, Path.Combine(directory, weights));
        var figures = new Dictionary<string, double>
        {
            ["steps"] = step,
            ["fit_seconds"] = elapsedBefore + clock.Elapsed.TotalSeconds,
            ["uniform_bits_per_code"] = Math.Log2(vq.K),
            ["train_codes"] = train.shape[0],
            ["positions"] = train.shape[1],
        };
        if (!double.IsNaN(lastBits)) figures["train_bits_per_code"] = lastBits;
        if (!double.IsNaN(lastHeldOut))
        {
            figures["heldout_bits_per_code"] = lastHeldOut;
            figures["heldout_bits_per_image"] = lastHeldOut * train.shape[1];    // the rate of the VQ-VAE under this prior
        }
        if (heldOut is not null)
            figures["heldout_bits_per_code_independent"] = IndependentBits(vq, heldOut);
        var settings = new JsonObject
        {
            ["network"] = config.Kind, ["max_steps"] = maxSteps, ["seed"] = options.Seed, ["batch_size"] = options.BatchSize,
            ["learning_rate"] = options.LearningRate, ["parameters"] = codes.parameters().Sum(p => p.numel()),
            [PriorKinds.FileKey] = weights,
        };
        return (new AutoregressivePrior(codes, vq), settings, figures);
    }

    /// <summary>Mean bits per code of <paramref name="indices"/> (M, L) under the code model, in evaluation mode.</summary>
    private static double HeldOutBits(CodeModel codes, Tensor indices, int batchSize, Device device)
    {
        bool wasTraining = codes.training;
        codes.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            double sum = 0;
            long count = indices.shape[0];
            for (long start = 0; start < count; start += batchSize)
            {
                long b = Math.Min(batchSize, count - start);
                sum += codes.Loss(indices.narrow(0, start, b).to(device)).item<float>() * b;
            }
            return CodeModel.BitsPerCode(sum / count);
        }
        finally
        {
            codes.train(wasTraining);
        }
    }

    /// <summary>Bits per code of held-out indices (M, L) under the VQ-VAE's own per-position categoricals (counts + 1), for comparison.</summary>
    private static double IndependentBits(VqVae vq, Tensor indices)
    {
        using var scope = NewDisposeScope();
        var smoothed = vq.PriorCounts.cpu().to(ScalarType.Float64) + 1;                      // (L, K)
        var logP = (smoothed / smoothed.sum(1, keepdim: true)).log();                         // (L, K)
        var picked = logP.gather(1, indices.t().cpu());                                        // (L, M)
        return -picked.mean().item<double>() / Math.Log(2);
    }

    /// <summary>The header of a stored training checkpoint, or null when there is none (or it is torn).</summary>
    private static State? ReadState(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var reader = new BinaryReader(File.OpenRead(path));
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) return null;
            return JsonSerializer.Deserialize<State>(reader.ReadBytes(reader.ReadInt32()), Json.Compact);
        }
        catch (Exception e) when (e is IOException or JsonException or EndOfStreamException)
        {
            return null;
        }
    }

    private static void SaveState(string path, State state, CodeModel codes, FlatAdamW optimizer) =>
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            var json = JsonSerializer.SerializeToUtf8Bytes(state, Json.Compact);
            writer.Write(json.Length);
            writer.Write(json);
            codes.save(writer);
            optimizer.Save(writer);
            writer.Write(EndMarker);
        });

    /// <summary>Reads weights and optimizer state into <paramref name="codes"/> and <paramref name="optimizer"/>; returns the step.</summary>
    private static long LoadState(string path, CodeModel codes, FlatAdamW optimizer)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        reader.ReadBytes(Magic.Length);
        var state = JsonSerializer.Deserialize<State>(reader.ReadBytes(reader.ReadInt32()), Json.Compact)!;
        using (no_grad())
        {
            codes.load(reader);
        }
        optimizer.Load(reader);
        if (!reader.ReadBytes(EndMarker.Length).AsSpan().SequenceEqual(EndMarker))
            throw new BadInputException($"{path} is truncated: delete it to start the autoregressive fit over.");
        return state.Step;
    }

    /// <inheritdoc/>
    public IFittedPrior Load(TrainedModel model, string directory, PriorRecord record)
    {
        var codes = CodeModels.Load(PriorKinds.FitFile(directory, record, WeightsFile));
        codes.to(model.Device);
        codes.eval();
        return new AutoregressivePrior(codes, (VqVae)model.Model);
    }
}
