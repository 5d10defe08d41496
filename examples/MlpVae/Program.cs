// A user's own model trained by VaeKit: the MLP VAE of MlpVae.cs on images held in memory, interrupted and resumed
// exactly, then loaded for sampling and evaluation, and given a prior of its own. Usage: dotnet run -- [RUNS_DIR] [STEPS]
using MlpVaeExample;
using VaeKit;
using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Evaluation;
using VaeKit.Imaging;
using VaeKit.Models;
using VaeKit.Priors;
using VaeKit.Training;
using static TorchSharp.torch;

string runs = args.Length > 0 ? args[0] : "runs";
int steps = args.Length > 1 ? int.Parse(args[1]) : 300;

// 1. Images in memory: any (N, S, S, C) uint8 tensor will do. Here, Fashion-MNIST's test split read with VaeKit's IDX reader.
var idx = IdxReader.ReadImages("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
using var all = new DecodedImages(tensor(idx.Pixels, ScalarType.Byte).view(idx.Count, idx.Rows, idx.Columns, 1));
using var data = LoadedDataset.FromImages(all, validationFraction: 0.1, description: "fashion-mnist t10k (in memory)");

// 2. The model family, and the run: everything here lands in config.json and in every checkpoint.
ModelFactory.Register(new MlpVaeFamily());
var config = new RunConfig
{
    Name = $"mlp-vae-{DateTime.Now:yyyyMMdd-HHmmss}",
    Model = new ModelConfig { Kind = "mlp-vae", ImageSize = 28, InChannels = 1, Latent = 20 },
    Train = new TrainConfig { Epochs = 5, BatchSize = 128, LearningRate = 1e-3, MaxSteps = steps, LogEvery = 5 },
    Data = new DataConfig(),
    Runtime = new RuntimeConfig { Device = "cpu" },
};

// 3. Train; stop halfway as Ctrl-C would (last.ckpt is saved), then resume exactly where it stood.
using var halfway = new CancellationTokenSource();
var first = TrainingRun.Train(config, new TrainOptions { RunsDirectory = runs, Data = data, Callbacks = [new PatienceStop(2), new CancelAtStep(steps / 2, halfway)] }, halfway.Token);
Console.WriteLine(first.Message);
var done = TrainingRun.Resume(new ResumeOptions { RunDirectory = first.Directory }, new TrainOptions { Data = data, Callbacks = [new PatienceStop(2)] }, CancellationToken.None);
Console.WriteLine($"{done.Outcome} at step {done.Step} → {done.Directory}");

// 4. Load the best checkpoint: sample from the prior, evaluate on the held-out images.
using var trained = TrainedModel.Load(done.Directory);
using (var samples = trained.Sample(64, temperature: 1, seed: 0))
using (var grid = ImageGrid.Make(samples, 8, scale: 2))
    ImageGrid.SavePng(grid, Path.Combine(done.Directory, "samples.png"));
var report = trained.Evaluate(data.Validation);
Console.WriteLine($"validation: mse {report.Mse:F4}  psnr {report.Psnr:F2} dB  ssim {report.Ssim:F3}  kl {report.Kl:F2}  nll ≤ {report.NllBitsPerDim:F3} bits/dim");

// 5. The family's own prior (AggregateGaussianPrior.cs), fitted after training and stored in RUN/priors/aggregate-gaussian/,
//    then generation measured under both priors: the image-space FD of 1,000 samples against the held-out images, in the
//    shipped Fashion-MNIST feature network, with the training images as the real floor.
PriorKinds.Register(new AggregateGaussianPriorKind());
var fit = PriorKinds.Fit(trained, AggregateGaussianPriorKind.KindName, data, new PriorFitOptions());
fit.Prior.Dispose();
Console.WriteLine($"prior {fit.Record.Kind}: held-out log-likelihood {fit.Record.Figures["heldout_loglik"]:F2} nats per code " +
                  $"({fit.Record.Figures["heldout_loglik_standard"]:F2} under N(0, I))");
using var features = FeatureNetwork.Load("fashion-mnist");
foreach (string name in new[] { PriorKinds.Standard, AggregateGaussianPriorKind.KindName })
{
    using var prior = trained.Prior(name);
    var measured = trained.Evaluate(data.Validation, new EvalOptions
    {
        ImportanceSamples = 2, Prior = name, FdImages = 1000,
        Fd = new FdSetup(features, Floor: data.Train),
        SampleCodes = (n, seed) => trained.SampleCodes(prior, n, temperature: 1, seed),
    });
    Console.WriteLine($"prior {name}: FD {measured.Fd:F2} (N = {measured.FdImages}), reconstructions {measured.FdReconstructions:F2}, floor {measured.FdFloor:F2}");
}
return done.Outcome == RunOutcome.Completed ? 0 : 1;

/// <summary>Cancels a token once a step is reported, as a Ctrl-C would.</summary>
sealed class CancelAtStep(long step, CancellationTokenSource cancel) : IRunCallback
{
    public void StepCompleted(StepReport report)
    {
        if (report.Metrics.Step >= step) cancel.Cancel();
    }
}
