using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>How a feature network is trained: every number that decides its weights, recorded beside them.</summary>
public sealed record FeatureNetworkRecipe
{
    /// <summary>"fashion-mnist" (its 60,000 training images, tested on t10k) or "faces" (synthetic faces and their attributes).</summary>
    public required string Data { get; init; }
    /// <summary>Fashion-MNIST folder; null = Debian's /usr/share/datasets/fashion-mnist.</summary>
    public string? FashionMnistDirectory { get; init; }
    /// <summary>Passes over the training images.</summary>
    public int Epochs { get; init; } = 8;
    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Peak learning rate of AdamW, reached after <see cref="WarmupSteps"/> and annealed to 0 by a cosine.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 200;
    /// <summary>AdamW's decoupled weight decay.</summary>
    public double WeightDecay { get; init; } = 5e-4;
    /// <summary>Seed of the initialisation, the batch order and the flips.</summary>
    public int Seed { get; init; }
    /// <summary>Faces: training images, drawn from the synthetic set seeded <see cref="FaceTrainSeed"/>.</summary>
    public int FaceTrainImages { get; init; } = 40_000;
    /// <summary>Faces: test images, from the set seeded <see cref="FaceTestSeed"/>.</summary>
    public int FaceTestImages { get; init; } = 5_000;
    /// <summary>Faces: the seed of the training faces; neither it nor the test seed is a seed runs use by default (0).</summary>
    public int FaceTrainSeed { get; init; } = 9_001;
    /// <summary>Faces: the seed of the test faces.</summary>
    public int FaceTestSeed { get; init; } = 9_002;

    /// <summary>Checks the numbers.</summary>
    /// <exception cref="BadInputException">An unknown data set or a non-positive count.</exception>
    public FeatureNetworkRecipe Validate()
    {
        if (Data is not ("fashion-mnist" or "faces"))
            throw new BadInputException($"A feature network is trained on fashion-mnist or faces, not '{Data}'.");
        if (Epochs < 1 || BatchSize < 1 || WarmupSteps < 0 || FaceTrainImages < BatchSize || FaceTestImages < 1)
            throw new BadInputException("The epochs, batch size and image counts of a feature network must be positive (the training images at least one batch).");
        if (!(LearningRate > 0) || !(WeightDecay >= 0)) throw new BadInputException("The learning rate must be positive and the weight decay not negative.");
        return this;
    }
}

/// <summary>What training a feature network produced: written as fd-NAME.json beside fd-NAME.safetensors.</summary>
public sealed record FeatureNetworkRecord
{
    /// <summary>The network's name (fashion-mnist, faces).</summary>
    public required string Name { get; init; }
    /// <summary>The command that reproduces the file.</summary>
    public required string Command { get; init; }
    /// <summary>The recipe it was trained with.</summary>
    public required FeatureNetworkRecipe Recipe { get; init; }
    /// <summary>Its architecture.</summary>
    public required FeatureNetworkSpec Spec { get; init; }
    /// <summary>Trainable parameters.</summary>
    public long Parameters { get; init; }
    /// <summary>Test accuracy of each head on images it never trained on.</summary>
    public required IReadOnlyDictionary<string, double> TestAccuracy { get; init; }
    /// <summary>Mean of <see cref="TestAccuracy"/> over the heads.</summary>
    public double MeanTestAccuracy { get; init; }
    /// <summary>Training and test images.</summary>
    public int TrainImages { get; init; }
    /// <summary>Test images.</summary>
    public int TestImages { get; init; }
    /// <summary>Optimizer steps.</summary>
    public long Steps { get; init; }
    /// <summary>SHA-256 of the safetensors file, lower-case hex.</summary>
    public required string Sha256 { get; init; }
    /// <summary>Size of the safetensors file in bytes.</summary>
    public long Bytes { get; init; }
    /// <summary>libtorch intra-op threads during training: CPU results are reproducible at the same count.</summary>
    public int Threads { get; init; }
    /// <summary>Training wall time, seconds (this machine, informative only).</summary>
    public double Seconds { get; init; }
}

/// <summary>
/// Trains a <see cref="FeatureNetwork"/> deterministically on the CPU: seeded initialisation, seeded batch order and
/// horizontal flips, AdamW with warm-up and cosine decay, the sum of every head's cross-entropy. The weights depend
/// only on the recipe, the libtorch build and the thread count, all recorded. <c>vae fd-net train</c> calls it.
/// </summary>
public static class FeatureNetworkTraining
{
    /// <summary>The labelled images one network learns from: (N, S, S, C) uint8 and (N, heads) int64, on the CPU.</summary>
    internal sealed record Labelled(Tensor Images, Tensor Labels) : IDisposable
    {
        public int Count => (int)Images.shape[0];
        public void Dispose() { Images.Dispose(); Labels.Dispose(); }
    }

    /// <summary>Trains the network <paramref name="recipe"/> describes and writes fd-NAME.safetensors and fd-NAME.json
    /// into <paramref name="outputDirectory"/>; <paramref name="log"/> receives one line per epoch.</summary>
    public static FeatureNetworkRecord Train(FeatureNetworkRecipe recipe, string outputDirectory, string command,
                                             Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        recipe.Validate();
        var clock = Stopwatch.StartNew();
        FeatureNetworkSpec spec = recipe.Data == "fashion-mnist"
            ? new FeatureNetworkSpec { Name = "fashion-mnist", Channels = 1, Heads = [new FeatureHead("label", 10)] }
            : new FeatureNetworkSpec { Name = "faces", Channels = 3, Heads = FaceAttributes.Heads.Select(h => new FeatureHead(h.Name, h.Classes)).ToList() };
        var (train, test) = recipe.Data == "fashion-mnist" ? FashionMnist(recipe, spec.ImageSize) : Faces(recipe, spec.ImageSize, cancellationToken);
        using var _ = train;
        using var __ = test;
        log?.Invoke($"{spec.Name}: {train.Count} training and {test.Count} test images at {spec.ImageSize} px");

        manual_seed(recipe.Seed);
        using var network = new FeatureNetwork(spec);
        using var optimizer = optim.AdamW(network.parameters(), lr: recipe.LearningRate, weight_decay: recipe.WeightDecay);
        using var order = new Generator((ulong)recipe.Seed + 0x5EEDUL);
        int stepsPerEpoch = train.Count / recipe.BatchSize;                 // the last partial batch is dropped
        long total = (long)stepsPerEpoch * recipe.Epochs, step = 0;
        var offsets = Offsets(spec);

        for (int epoch = 1; epoch <= recipe.Epochs; epoch++)
        {
            network.train();
            using var permutation = randperm(train.Count, generator: order);
            double lossSum = 0;
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var index = permutation.narrow(0, (long)s * recipe.BatchSize, recipe.BatchSize);
                var x = ToInput(train.Images.index_select(0, index));                              // (B, C, S, S)
                var flip = rand(recipe.BatchSize, generator: order).lt(0.5).view(-1, 1, 1, 1);
                x = where(flip, x.flip(3), x);
                var loss = Loss(network.call(x), train.Labels.index_select(0, index), spec, offsets);
                optimizer.zero_grad();
                loss.backward();
                optimizer.ParamGroups.First().LearningRate = LearningRate(recipe, ++step, total);
                optimizer.step();
                lossSum += loss.item<float>();
            }
            var accuracy = Accuracy(network, test, spec, offsets);
            log?.Invoke($"epoch {epoch}/{recipe.Epochs}: loss {lossSum / stepsPerEpoch:F4}  test accuracy " +
                        string.Join("  ", accuracy.Select(a => $"{a.Key} {a.Value:P2}")));
            if (epoch == recipe.Epochs)
            {
                Directory.CreateDirectory(outputDirectory);
                string weights = Path.Combine(outputDirectory, $"fd-{spec.Name}.safetensors");
                network.Save(weights);
                var bytes = File.ReadAllBytes(weights);
                var record = new FeatureNetworkRecord
                {
                    Name = spec.Name,
                    Command = command,
                    Recipe = recipe,
                    Spec = spec,
                    Parameters = network.parameters().Sum(p => p.numel()),
                    TestAccuracy = accuracy,
                    MeanTestAccuracy = accuracy.Values.Average(),
                    TrainImages = train.Count,
                    TestImages = test.Count,
                    Steps = step,
                    Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
                    Bytes = bytes.Length,
                    Threads = get_num_threads(),
                    Seconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
                };
                Json.WriteAllTextAtomic(Path.Combine(outputDirectory, $"fd-{spec.Name}.json"), JsonSerializer.Serialize(record, Json.Indented) + "\n");
                return record;
            }
        }
        throw new UnreachableException();
    }

    /// <summary>
    /// Each head's accuracy of <paramref name="network"/> on its recipe's held-out images (Fashion-MNIST's t10k, or
    /// the faces of the set seeded <see cref="FeatureNetworkRecipe.FaceTestSeed"/>): the measurement behind a record's
    /// <see cref="FeatureNetworkRecord.TestAccuracy"/>, made again on whatever weights are given.
    /// </summary>
    public static Dictionary<string, double> TestAccuracy(FeatureNetwork network, FeatureNetworkRecipe recipe, CancellationToken cancellationToken = default)
    {
        int size = network.Spec.ImageSize;
        Labelled test;
        if (recipe.Data == "fashion-mnist")
        {
            var (train, t10k) = FashionMnist(recipe, size);
            train.Dispose();
            test = t10k;
        }
        else
        {
            test = RenderFaces(recipe.FaceTestSeed, recipe.FaceTestImages, size, cancellationToken);
        }
        using (test) return Accuracy(network, test, network.Spec, Offsets(network.Spec));
    }

    /// <summary>Warm-up then cosine decay to 0 over <paramref name="total"/> steps.</summary>
    internal static double LearningRate(FeatureNetworkRecipe recipe, long step, long total)
    {
        if (step <= recipe.WarmupSteps) return recipe.LearningRate * step / Math.Max(1, recipe.WarmupSteps);
        double progress = (double)(step - recipe.WarmupSteps) / Math.Max(1, total - recipe.WarmupSteps);
        return recipe.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }

    /// <summary>Each head's first logit column.</summary>
    private static int[] Offsets(FeatureNetworkSpec spec)
    {
        var offsets = new int[spec.Heads.Count];
        for (int h = 1; h < offsets.Length; h++) offsets[h] = offsets[h - 1] + spec.Heads[h - 1].Classes;
        return offsets;
    }

    /// <summary>(B, S, S, C) uint8 → (B, C, S, S) float in [0, 1].</summary>
    private static Tensor ToInput(Tensor pixels) => pixels.permute(0, 3, 1, 2).to_type(ScalarType.Float32) / 255;

    /// <summary>logits (B, Σ classes), labels (B, heads) → the sum over heads of the mean cross-entropy.</summary>
    private static Tensor Loss(Tensor logits, Tensor labels, FeatureNetworkSpec spec, int[] offsets)
    {
        Tensor? loss = null;
        for (int h = 0; h < spec.Heads.Count; h++)
        {
            var term = nn.functional.cross_entropy(logits.narrow(1, offsets[h], spec.Heads[h].Classes), labels[.., h]);
            loss = loss is null ? term : loss + term;
        }
        return loss!;
    }

    /// <summary>The fraction of <paramref name="test"/> each head classifies correctly, in evaluation mode.</summary>
    private static Dictionary<string, double> Accuracy(FeatureNetwork network, Labelled test, FeatureNetworkSpec spec, int[] offsets)
    {
        network.eval();
        using var noGrad = no_grad();
        var correct = new long[spec.Heads.Count];
        for (int start = 0; start < test.Count; start += 500)
        {
            using var scope = NewDisposeScope();
            int b = Math.Min(500, test.Count - start);
            var logits = network.call(ToInput(test.Images.narrow(0, start, b)));
            var labels = test.Labels.narrow(0, start, b);
            for (int h = 0; h < spec.Heads.Count; h++)
                correct[h] += logits.narrow(1, offsets[h], spec.Heads[h].Classes).argmax(1).eq(labels[.., h]).sum().item<long>();
        }
        return spec.Heads.Select((head, h) => (head.Name, (double)correct[h] / test.Count)).ToDictionary(p => p.Name, p => Math.Round(p.Item2, 5));
    }

    private static (Labelled Train, Labelled Test) FashionMnist(FeatureNetworkRecipe recipe, int size)
    {
        var spec = (DataSpec.FashionMnist)DataSpec.Parse(recipe.FashionMnistDirectory is null ? "fashion-mnist" : $"fashion-mnist:{recipe.FashionMnistDirectory}");
        // The loader keeps the official split and order: its 60,000 training images, then t10k as the validation set.
        var loaded = DatasetLoader.Load(new DataOptions { Source = spec, ImageSize = size, Channels = 1 });
        string Labels(string stem) => new[] { stem + ".gz", stem }.Select(n => Path.Join(spec.Directory, n)).FirstOrDefault(File.Exists)
            ?? throw new BadInputException($"Fashion-MNIST folder {spec.Directory} has no {stem}.gz: the feature network needs the labels (apt-get install dataset-fashion-mnist).");
        var trainLabels = IdxReader.ReadLabels(Labels("train-labels-idx1-ubyte"));
        var testLabels = IdxReader.ReadLabels(Labels("t10k-labels-idx1-ubyte"));
        if (trainLabels.Length != loaded.Train.Count || testLabels.Length != loaded.Validation.Count)
            throw new BadInputException($"Fashion-MNIST in {spec.Directory}: {trainLabels.Length}/{testLabels.Length} labels for {loaded.Train.Count}/{loaded.Validation.Count} images.");
        var train = new Labelled(loaded.Train.Pixels.clone().DetachFromDisposeScope(), tensor(trainLabels.Select(l => (long)l).ToArray()).view(-1, 1).DetachFromDisposeScope());
        var test = new Labelled(loaded.Validation.Pixels.clone().DetachFromDisposeScope(), tensor(testLabels.Select(l => (long)l).ToArray()).view(-1, 1).DetachFromDisposeScope());
        loaded.Dispose();
        return (train, test);
    }

    private static (Labelled Train, Labelled Test) Faces(FeatureNetworkRecipe recipe, int size, CancellationToken ct) =>
        (RenderFaces(recipe.FaceTrainSeed, recipe.FaceTrainImages, size, ct), RenderFaces(recipe.FaceTestSeed, recipe.FaceTestImages, size, ct));

    /// <summary>Faces 0..count−1 of the set seeded <paramref name="seed"/> with their attribute labels.</summary>
    internal static Labelled RenderFaces(int seed, int count, int size, CancellationToken ct)
    {
        int bytes = size * size * 3, heads = FaceAttributes.Heads.Count;
        var pixels = new byte[(long)count * bytes];
        var labels = new long[(long)count * heads];
        Parallel.For(0, count, new ParallelOptions { CancellationToken = ct }, i =>
        {
            SyntheticFaces.Render(seed, i, size, pixels.AsSpan(i * bytes, bytes));
            var attributes = SyntheticFaces.Attributes(seed, i).Labels;
            for (int h = 0; h < heads; h++) labels[(long)i * heads + h] = attributes[h];
        });
        return new Labelled(tensor(pixels).view(count, size, size, 3).DetachFromDisposeScope(), tensor(labels).view(count, heads).DetachFromDisposeScope());
    }
}
