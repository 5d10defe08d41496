using System.Diagnostics;
using System.Text.Json;
using SkiaSharp;
using VaeKit.Config;
using VaeKit.Training;

namespace VaeKit.Tests.Training;

public class TrainingRunTests
{
    private static RunConfig SmallRun(string name, string cache) => new()
    {
        Name = name,
        Model = new ModelConfig { ImageSize = 16, Widths = [4, 8], Blocks = 1, Latent = 4 },
        Train = new TrainConfig { Epochs = 3, BatchSize = 32, LearningRate = 5e-3, WarmupSteps = 3, LogEvery = 1, Seed = 9 },
        Data = new DataConfig { Source = "synthetic:200", Flip = true, CacheDirectory = cache },
        Runtime = new RuntimeConfig { Threads = 2 },
    };

    private static List<(long Step, double Loss)> TrainRows(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "train")
            .Select(r => (r.GetProperty("step").GetInt64(), r.GetProperty("loss").GetDouble()))
            .ToList();

    private static List<string> EpochRows(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "epoch")
            .Select(r => $"{r.GetProperty("epoch")} {r.GetProperty("step")} {r.GetProperty("train_loss")} {r.GetProperty("train_kl")} {r.GetProperty("val_loss")} {r.GetProperty("val_psnr")} {r.GetProperty("best")}")
            .ToList();

    private static List<double> ValidationLosses(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("type").GetString() == "epoch")
            .Select(r => r.GetProperty("val_loss").GetDouble())
            .ToList();

    /// <summary>Cancels (as Ctrl-C does) once a given step has completed.</summary>
    private sealed class CancelAt(long step, CancellationTokenSource cancel) : IRunCallback
    {
        public void StepCompleted(StepReport report)
        {
            if (report.Metrics.Step == step) cancel.Cancel();
        }
    }

    /// <summary>What an output sees when it hears of an epoch: the grids and that epoch's checkpoints already on disk.</summary>
    private sealed class EpochWitness : IRunCallback
    {
        public List<string> Seen { get; } = [];
        private RunContext? _run;
        public void RunStarted(RunStart start) => _run = start.Context;
        public void EpochCompleted(EpochReport report)
        {
            long last = Checkpoint.ReadHeader(_run!.Directory.Last).Step;
            bool grids = report.ReconstructionGrid is string r && File.Exists(r) && report.SampleGrid is string g && File.Exists(g);
            bool best = !report.IsBest || Checkpoint.ReadHeader(_run.Directory.Best).Step == report.Step;
            Seen.Add($"epoch {report.Epoch}: last at {last} of {report.Step}, grids {grids}, best {best}");
        }
    }

    [Fact]
    public void Outputs_hear_of_an_epoch_after_its_grids_and_checkpoints_are_written()
    {
        using var dir = new TempDir();
        var witness = new EpochWitness();
        var result = TrainingRun.Train(SmallRun("w", dir["cache"]), new TrainOptions { RunsDirectory = dir["runs"], Callbacks = [witness] }, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, result.Outcome);
        Assert.Equal(["epoch 1: last at 5 of 5, grids True, best True", "epoch 2: last at 10 of 10, grids True, best True", "epoch 3: last at 15 of 15, grids True, best True"],
                     witness.Seen);
        // An epoch row names the weight its validation loss used as val_kl_weight; kl_weight is the train rows' (the step's).
        var epochs = File.ReadAllLines(Path.Combine(result.Directory, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
                         .Where(r => r.GetProperty("type").GetString() == "epoch").ToList();
        Assert.All(epochs, r => Assert.Equal(new TrainConfig().KlWeight, r.GetProperty("val_kl_weight").GetDouble()));
        Assert.All(epochs, r => Assert.False(r.TryGetProperty("kl_weight", out _)));
    }

    /// <summary>A user's logger: one class, given in TrainOptions.Loggers; it records what it is handed.</summary>
    private sealed class RowRecorder : IRunLogger
    {
        public List<MetricsRow> Rows { get; } = [];
        public RunOutcome? Ended { get; private set; }
        public void Log(MetricsRow row) => Rows.Add(row);
        public void End(RunEnd end) => Ended = end.Outcome;
    }

    [Fact]
    public void Every_logger_gets_the_same_rows_with_log_every_applied_once()
    {
        using var dir = new TempDir();
        var config = SmallRun("rows", dir["cache"]);
        config = config with { Train = config.Train with { LogEvery = 4 } };
        var recorder = new RowRecorder();
        var result = TrainingRun.Train(config, new TrainOptions { RunsDirectory = dir["runs"], Loggers = [recorder] }, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, result.Outcome);
        Assert.Equal(RunOutcome.Completed, recorder.Ended);

        // 15 steps, log_every 4: train rows at 4, 8, 12 for this logger and metrics.jsonl alike; an epoch row per epoch.
        Assert.Equal([4L, 8, 12], recorder.Rows.Where(r => r.Kind == MetricsRowKind.Train).Select(r => r.Step));
        Assert.Equal([4L, 8, 12], TrainRows(result.Directory).Select(r => r.Step));
        var epochs = recorder.Rows.Where(r => r.Kind == MetricsRowKind.Epoch).ToList();
        Assert.Equal([5L, 10, 15], epochs.Select(r => r.Step));
        Assert.Equal(MetricsRowKind.Stop, recorder.Rows[^1].Kind);
        Assert.All(epochs, e => Assert.True(e.Images.ContainsKey("reconstruction") && e.Images.ContainsKey("samples")));

        // The same numbers under each output's spelling: metrics.jsonl's flat keys are the row's keys.
        var first = epochs[0];
        var row = JsonDocument.Parse(File.ReadAllLines(Path.Combine(result.Directory, "metrics.jsonl"))
                                         .First(l => l.Contains("\"type\":\"epoch\""))).RootElement;
        foreach (var metric in first.Values)
            Assert.Equal(metric.Value, row.GetProperty(metric.Key(MetricKeyStyle.Flat)).GetDouble(), 12);
        Assert.Equal("val/kl", new Metric(MetricScope.Validation, "kl", 0).Key(MetricKeyStyle.Path));
        Assert.Equal("epoch/train_kl", new Metric(MetricScope.EpochTrain, "kl", 0).Key(MetricKeyStyle.Path));
        Assert.Equal("train_kl", new Metric(MetricScope.EpochTrain, "kl", 0).Key(MetricKeyStyle.Flat));
    }

    [Fact]
    public void A_vq_vae_stopped_before_its_first_epoch_end_leaves_a_checkpoint_that_samples()
    {
        using var dir = new TempDir();
        var config = SmallRun("vq", dir["cache"]);
        config = config with { Model = config.Model with { Kind = ModelKinds.VqVae } };
        using var cancel = new CancellationTokenSource();
        var stopped = TrainingRun.Train(config, new TrainOptions { RunsDirectory = dir["runs"], Callbacks = [new CancelAt(2, cancel)] }, cancel.Token);
        Assert.Equal(RunOutcome.Interrupted, stopped.Outcome);
        using var trained = TrainedModel.Load(stopped.Directory, "last");
        using var samples = trained.Sample(4, 1.0, seed: 0);          // the family fitted its code prior before the save
        Assert.Equal(4, samples.shape[0]);
    }

    [Theory]
    [InlineData(null)]   // the CPU default: every step read back at once
    [InlineData(3)]      // the GPU way: steps queued and read back in windows (windows of 3 in 5-step epochs)
    public void Interrupting_and_resuming_gives_the_same_run_as_never_stopping(int? readbackEvery)
    {
        using var dir = new TempDir();
        RunConfig Run(string name)
        {
            var config = SmallRun(name, dir["cache"]);
            return config with { Runtime = config.Runtime with { ReadbackEvery = readbackEvery } };
        }
        var straight = TrainingRun.Train(Run("straight"), dir["runs"], NullCallback.Instance, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, straight.Outcome);

        using var cancel = new CancellationTokenSource();
        var stopped = TrainingRun.Train(Run("stopped"), dir["runs"], new CancelAt(8, cancel), cancel.Token);
        Assert.Equal(RunOutcome.Interrupted, stopped.Outcome);
        Assert.Equal(8, stopped.Step);   // in windows too: step 8 ends a window (5-step epochs: flushes at 3, 5, 8, 10)
        Assert.Equal(stopped.Step, Checkpoint.ReadHeader(Path.Combine(stopped.Directory, "checkpoints", "last.ckpt")).Step);
        Assert.Contains("saved", stopped.Message?.ToString());

        var resumed = TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory }, NullCallback.Instance, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, resumed.Outcome);

        Assert.Equal(TrainRows(straight.Directory), TrainRows(resumed.Directory));          // every step once, same losses
        Assert.Equal(EpochRows(straight.Directory), EpochRows(resumed.Directory));          // epoch means survive the stop
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight.Directory, "images/epoch_003_samples.png")),
                     File.ReadAllBytes(Path.Combine(resumed.Directory, "images/epoch_003_samples.png")));
    }

    [Fact]
    public void Stopping_on_the_last_step_of_an_epoch_still_finishes_that_epoch_on_resume()
    {
        using var dir = new TempDir();
        var straight = TrainingRun.Train(SmallRun("straight", dir["cache"]), dir["runs"], NullCallback.Instance, CancellationToken.None);

        using var cancel = new CancellationTokenSource();
        var stopped = TrainingRun.Train(SmallRun("stopped", dir["cache"]), dir["runs"], new CancelAt(5, cancel), cancel.Token);  // 5 steps per epoch
        Assert.Equal(RunOutcome.Interrupted, stopped.Outcome);
        Assert.Empty(EpochRows(stopped.Directory));                                         // epoch 1 was not closed yet

        TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory }, NullCallback.Instance, CancellationToken.None);
        Assert.Equal(EpochRows(straight.Directory), EpochRows(stopped.Directory));
        Assert.Equal(TrainRows(straight.Directory), TrainRows(stopped.Directory));
    }

    [Fact]
    public void Resume_refuses_data_that_changed_unless_allowed()
    {
        using var dir = new TempDir();
        var images = Path.Combine(dir.Path, "images");
        Directory.CreateDirectory(images);
        for (int i = 0; i < 40; i++)
            File.WriteAllBytes(Path.Combine(images, $"{i:D3}.png"), Data.TestImages.Solid(20, 20, new SkiaSharp.SKColor((byte)(i * 6), 80, 200)));
        var config = SmallRun("folder", dir["cache"]) with { Data = new DataConfig { Source = images, CacheDirectory = dir["cache"] } };
        using var cancel = new CancellationTokenSource();
        var stopped = TrainingRun.Train(config, dir["runs"], new CancelAt(1, cancel), cancel.Token);
        File.WriteAllBytes(Path.Combine(images, "new.png"), Data.TestImages.Solid(20, 20, new SkiaSharp.SKColor(1, 2, 3)));

        var e = Assert.Throws<BadInputException>(() =>
            TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory }, NullCallback.Instance, CancellationToken.None));
        Assert.Contains("resume.allow_data_change", e.Message);

        var resumed = TrainingRun.Resume(new ResumeOptions { RunDirectory = stopped.Directory, AllowDataChange = true }, NullCallback.Instance, CancellationToken.None);
        Assert.Equal(RunOutcome.Completed, resumed.Outcome);
    }

    [Fact]
    public void A_diverging_run_stops_names_the_step_and_keeps_the_last_good_checkpoint()
    {
        using var dir = new TempDir();
        var first = TrainingRun.Train(SmallRun("diverge", dir["cache"]) with { Train = SmallRun("", "").Train with { Epochs = 1 } },
                                      dir["runs"], NullCallback.Instance, CancellationToken.None);
        string last = Path.Combine(first.Directory, "checkpoints/last.ckpt");
        // Rewrite the checkpoint as if the run had been started with an absurd learning rate.
        var header = Checkpoint.ReadHeader(last);
        var explosive = header.Config.Train with { Epochs = 3, LearningRate = 1e9, WarmupSteps = 0, GradClip = 0, Schedule = LrSchedule.Constant };
        var (_, trainer) = Checkpoint.Load(last, explosive, totalSteps: 15, TorchSharp.torch.CPU);
        using (trainer.Model)
        using (trainer)
            Checkpoint.Save(last, header with { Config = header.Config with { Train = explosive } }, trainer);
        byte[] good = File.ReadAllBytes(last);

        var result = TrainingRun.Resume(new ResumeOptions { RunDirectory = first.Directory }, NullCallback.Instance, CancellationToken.None);

        Assert.Equal(RunOutcome.Diverged, result.Outcome);
        Assert.Matches(@"diverged at step (6|7|8|9|10)\b", result.Message?.ToString());       // after the checkpoint at step 5
        Assert.Contains("train.learning_rate", result.Message?.ToString());
        Assert.Contains("(step 5)", result.Message?.ToString());
        Assert.Equal(good, File.ReadAllBytes(last));                             // the good checkpoint is untouched
        var stop = File.ReadAllLines(Path.Combine(result.Directory, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).Last();
        Assert.Equal("diverged", stop.GetProperty("reason").GetString());
    }

    [Fact]
    public void Resume_refuses_another_runs_checkpoint_and_a_run_that_is_already_done()
    {
        using var dir = new TempDir();
        var a = TrainingRun.Train(SmallRun("a", dir["cache"]), dir["runs"], NullCallback.Instance, CancellationToken.None);
        var b = TrainingRun.Train(SmallRun("b", dir["cache"]) with { Train = SmallRun("", "").Train with { Epochs = 1 } },
                                  dir["runs"], NullCallback.Instance, CancellationToken.None);

        var foreign = Assert.Throws<BadInputException>(() => TrainingRun.Resume(
            new ResumeOptions { RunDirectory = a.Directory, From = Path.Combine(b.Directory, "checkpoints/last.ckpt"), Epochs = 5 },
            NullCallback.Instance, CancellationToken.None));
        Assert.Contains("belongs to run 'b'", foreign.Message);

        var done = Assert.Throws<BadInputException>(() => TrainingRun.Resume(
            new ResumeOptions { RunDirectory = a.Directory }, NullCallback.Instance, CancellationToken.None));
        Assert.Contains("train.epochs", done.Message);
    }

    [Fact]
    public void Resuming_from_an_older_checkpoint_keeps_the_newer_one()
    {
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        var run = TrainingRun.Train(SmallRun("rewind", dir["cache"]), dir["runs"], new CancelAt(3, cancel), cancel.Token);
        string last = Path.Combine(run.Directory, "checkpoints/last.ckpt"), old = Path.Combine(run.Directory, "checkpoints/step3.ckpt");
        File.Copy(last, old);
        TrainingRun.Resume(new ResumeOptions { RunDirectory = run.Directory }, NullCallback.Instance, CancellationToken.None);
        Assert.Equal(15, Checkpoint.ReadHeader(last).Step);

        var messages = new MessageLog();
        var rewound = TrainingRun.Resume(new ResumeOptions { RunDirectory = run.Directory, From = old, Epochs = 4 }, messages, CancellationToken.None);

        Assert.Equal(RunOutcome.Completed, rewound.Outcome);
        Assert.Equal(15, Checkpoint.ReadHeader(Path.Combine(run.Directory, "checkpoints/last.step-15.ckpt")).Step);
        Assert.Contains(messages.Lines, m => m.Contains("rewinding from step 15 to step 3"));
        Assert.Equal(20, Checkpoint.ReadHeader(last).Step);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), TrainRows(run.Directory).Select(r => r.Step));   // no step twice
    }

    private sealed class MessageLog : IRunCallback
    {
        public List<string> Lines { get; } = [];
        public void Message(string text) => Lines.Add(text);
    }

    [Fact]
    public void Two_processes_cannot_train_one_run_at_once()
    {
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        var run = TrainingRun.Train(SmallRun("locked", dir["cache"]), dir["runs"], new CancelAt(2, cancel), cancel.Token);
        using var held = new RunDirectory(run.Directory).Lock();     // as a second `vae train --resume` would hold it

        var e = Assert.Throws<BadInputException>(() => TrainingRun.Resume(
            new ResumeOptions { RunDirectory = run.Directory }, NullCallback.Instance, CancellationToken.None));
        Assert.Contains("Another vae process", e.Message);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Tiny_vae_learns_synthetic_faces_with_flat_memory()
    {
        using var dir = new TempDir();
        var config = new RunConfig
        {
            Name = "smoke",
            Model = Presets.Tiny,
            Train = new TrainConfig { Epochs = 5, BatchSize = 64, LogEvery = 1 },
            Data = new DataConfig { Source = "synthetic:4096", CacheDirectory = dir["cache"] },
        };
        var listener = new RssProbe();
        var result = TrainingRun.Train(config, dir["runs"], listener, CancellationToken.None);

        Assert.Equal(RunOutcome.Completed, result.Outcome);
        Assert.Equal(5 * (3891 / 64), result.Step);           // 4096 − 205 validation images, full batches only
        double firstStepLoss = TrainRows(result.Directory)[0].Loss;
        var validation = ValidationLosses(result.Directory);
        // An untrained decoder outputs ~0.5 everywhere; after five epochs the validation loss must be under
        // 40 % of the first step's loss and still falling from the first epoch.
        Assert.True(validation[^1] < 0.4 * firstStepLoss, $"val {validation[^1]:F1} vs first step {firstStepLoss:F1}");
        Assert.True(validation[^1] < validation[0], string.Join(", ", validation));

        foreach (var png in Directory.GetFiles(Path.Combine(result.Directory, "images"), "*.png"))
        {
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
            Assert.Equal(8 * (64 + 2) + 2, bitmap.Width);        // 8 columns of 32 px drawn 2×, 2 px gaps
        }

        // No native tensor outlives its step: the live count is identical at every epoch end. RSS still rises for a
        // few hundred steps while glibc's allocator settles (freed blocks are kept, not returned; measured plateau
        // ~1.2 GB at ~400 steps), so it gets a bound that a per-step leak cannot meet: a missing dispose scope
        // costs ~20 MB a step, ~1.2 GB an epoch here.
        // (From epoch 2: the first epoch end still counts a few objects of the first step's set-up awaiting the GC.)
        Assert.True(listener.LiveTensors.Skip(1).Distinct().Count() == 1, "live tensors at epoch ends: " + string.Join(", ", listener.LiveTensors));
        long growth = listener.Rss[^1] - listener.Rss[1];
        Assert.True(growth < 400L << 20, $"RSS grew {growth >> 20} MB from epoch 2 to 5: {string.Join(", ", listener.Rss.Select(r => r >> 20))} MB");
    }

    private sealed class RssProbe : IRunCallback
    {
        public List<long> Rss { get; } = [];
        public List<long> LiveTensors { get; } = [];

        public void EpochCompleted(EpochReport report)
        {
            using var self = Process.GetCurrentProcess();
            Rss.Add(self.WorkingSet64);
            // Process-wide: batches are made on the prefetch thread and disposed on this one, so a thread's own
            // statistics drift by one per batch without anything leaking.
            // Tensors that earlier code dropped without disposing are counted until their finalizers run: run them.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            LiveTensors.Add(TorchSharp.torch.Tensor.TotalCount);
        }
    }
}
