using VaeKit.Cli;
using System.Diagnostics;
using VaeKit.Config;
using VaeKit.Tests.Cli;
using VaeKit.Training;

namespace VaeKit.Tests.Export;

/// <summary>
/// A checkpoint write that runs out of space: an injected stream failing like ENOSPC, and real, small tmpfs mounts
/// (root only: the tests that mount skip elsewhere, with the reason).
/// </summary>
public class FullDiskTests
{
    private const int Enospc = 28;

    /// <summary>Passes writes through until <paramref name="budget"/> bytes, then fails as write(2) does on a full disk.</summary>
    private sealed class FullDiskStream(Stream inner, long budget) : Stream
    {
        private long _written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > budget)
                throw new IOException("No space left on device", Enospc);
            inner.Write(buffer);
            _written += buffer.Length;
        }
    }

    private static CheckpointHeader Header(VaeModel model, long step, int epoch) => new()
    {
        Config = new RunConfig { Name = "run", Model = model.Config, Train = new TrainConfig(), Data = new DataConfig() },
        Step = step,
        Epoch = epoch,
    };

    private static string[] TempFiles(string run) => Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.tmp");

    [Fact]
    public void A_full_disk_keeps_the_previous_checkpoint_and_the_message_says_which_and_how_to_resume()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 1);
        string run = ExportFixture.Run(dir.Path, model, step: 7);   // last.ckpt at step 7, after epoch 2
        string last = Path.Combine(run, "checkpoints", "last.ckpt");
        using var trainer = new Trainer(model, new TrainConfig(), totalSteps: 10);

        var e = Assert.Throws<CheckpointWriteException>(() =>
            Checkpoint.Save(last, Header(model, step: 9, epoch: 3), trainer, wrap: s => new FullDiskStream(s, budget: 5000)));

        Assert.Equal(last, e.Path);
        Assert.Contains("the disk is full", e.Message);
        Assert.Contains("last.ckpt (step 7, after epoch 2) is intact", e.Message);
        Assert.Contains("temporary file was removed", e.Message);
        Assert.EndsWith($"continue with: the train operation with resume.run_directory={run}", e.Message);
        Assert.EndsWith($"continue with: vae train --resume {run}", CliRunner.AsPrintedBy("train", e.Text));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(TempFiles(run));
        Assert.Equal(7, Checkpoint.Verify(last).Step);
    }

    [Fact]
    public void A_failed_best_checkpoint_names_both_intact_files_and_resumes_from_last()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 1);
        string run = ExportFixture.Run(dir.Path, model, step: 7);
        string best = Path.Combine(run, "checkpoints", "best.ckpt");
        using var trainer = new Trainer(model, new TrainConfig(), totalSteps: 10);
        Checkpoint.Save(best, Header(model, step: 4, epoch: 1) with { BatchInEpoch = 2 }, trainer);

        var e = Assert.Throws<CheckpointWriteException>(() =>
            Checkpoint.Save(best, Header(model, step: 9, epoch: 3), trainer, wrap: s => new FullDiskStream(s, budget: 0)));
        Assert.Contains("best.ckpt (step 4, during epoch 2) and last.ckpt (step 7, after epoch 2) are intact", e.Message);
        Assert.EndsWith($"vae train --resume {run}", CliRunner.AsPrintedBy("train", e.Text));   // --resume reads last.ckpt
        Assert.Empty(TempFiles(run));
    }

    [Fact]
    public void A_full_disk_before_the_first_checkpoint_says_there_is_none_to_resume_from()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 1);
        var runDir = new RunDirectory(dir["run"]);
        runDir.Create();
        using var trainer = new Trainer(model, new TrainConfig(), totalSteps: 10);

        var e = Assert.Throws<CheckpointWriteException>(() =>
            Checkpoint.Save(runDir.Last, Header(model, step: 3, epoch: 1), trainer, wrap: s => new FullDiskStream(s, budget: 100)));
        Assert.Contains("No earlier checkpoint of this run is on disk", e.Message);
        Assert.Contains($"delete {runDir.Path} and start the run again", e.Message);
        Assert.False(File.Exists(runDir.Last));
        Assert.Empty(TempFiles(runDir.Path));
    }

    [FactAsRoot]
    public void A_real_full_tmpfs_fails_the_second_checkpoint_and_keeps_the_first()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(ExportFixture.Small, seed: 1);
        using var trainer = new Trainer(model, new TrainConfig(), totalSteps: 10);
        Checkpoint.Save(dir["probe.ckpt"], Header(model, 0, 0), trainer);
        long size = new FileInfo(dir["probe.ckpt"]).Length;

        using var mount = new Tmpfs(dir["mnt"], bytes: size + size / 2);   // room for one checkpoint, not for its replacement
        var run = new RunDirectory(Path.Combine(mount.Path, "run"));
        run.Create();
        Checkpoint.Save(run.Last, Header(model, step: 5, epoch: 1), trainer);

        var e = Assert.Throws<CheckpointWriteException>(() => Checkpoint.Save(run.Last, Header(model, step: 10, epoch: 2), trainer));
        Assert.Equal(Enospc, e.InnerException!.HResult);
        Assert.Contains("the disk is full (no space left on the device)", e.Message);
        Assert.Contains("last.ckpt (step 5, after epoch 1) is intact", e.Message);
        Assert.Contains("temporary file was removed", e.Message);
        Assert.Empty(TempFiles(run.Path));
        Assert.Equal(5, Checkpoint.Verify(run.Last).Step);
    }

    [FactAsRoot]
    [Trait("Category", "Slow")]
    public void Vae_train_on_a_full_disk_exits_1_with_the_story_and_resumes_once_space_is_free()
    {
        using var dir = new TempDir();
        using var mount = new Tmpfs(dir["mnt"], bytes: 64 << 20);
        string[] common = ["--widths", "16,32", "--latent", "16", "--image-size", "16", "--batch-size", "32", "--cache-dir", dir["cache"]];
        var (exit, output, error) = CliRunner.Run(["train", "--data", "synthetic:160", "--epochs", "1", "--name", "r", "--runs-dir", mount.Path, .. common]);
        Assert.True(exit == 0, output + error);
        string run = Path.Combine(mount.Path, "r");
        var first = Checkpoint.ReadHeader(Path.Combine(run, "checkpoints", "last.ckpt"));
        long checkpointBytes = new FileInfo(Path.Combine(run, "checkpoints", "last.ckpt")).Length;

        // Leave half a checkpoint free: epoch 2's metrics and images fit, its checkpoint does not.
        string filler = Path.Combine(dir.Path, "mnt", "filler");
        using (var fill = new FileStream(filler, FileMode.Create))
        {
            var zeros = new byte[1 << 16];
            long toWrite = new DriveInfo(mount.Path).AvailableFreeSpace - checkpointBytes / 2;
            for (; toWrite > 0; toWrite -= zeros.Length) fill.Write(zeros, 0, (int)Math.Min(zeros.Length, toWrite));
        }

        (exit, _, error) = CliRunner.Run("train", "--resume", run, "--epochs", "2");
        Assert.True(exit == ExitCodes.Failure, error);
        Console.WriteLine(error);
        Assert.StartsWith("error: Could not save the checkpoint", error.Trim());
        Assert.Contains("the disk is full", error);
        Assert.Contains($"last.ckpt (step {first.Step}, after epoch 1)", error);
        Assert.Contains($"vae train --resume {run}", error);
        Assert.DoesNotContain("VAEKIT_DEBUG", error);
        Assert.Empty(TempFiles(run));
        Assert.Equal(first.Step, Checkpoint.Verify(Path.Combine(run, "checkpoints", "last.ckpt")).Step);

        File.Delete(filler);
        (exit, output, error) = CliRunner.Run("train", "--resume", run, "--epochs", "2");
        Assert.True(exit == 0, output + error);
        Assert.Equal(2, Checkpoint.ReadHeader(Path.Combine(run, "checkpoints", "last.ckpt")).Epoch);
    }

    [FactAsRoot]
    public void Vae_import_onto_a_full_disk_exits_1_and_says_to_free_space()
    {
        using var dir = new TempDir();
        using var model = ExportFixture.Model(Presets.Tiny, seed: 1);
        VaeKit.Export.SafeTensors.Save(model, dir["tiny.safetensors"]);
        using var mount = new Tmpfs(dir["mnt"], bytes: 256 << 10);   // config.json fits, a 2.7 MB checkpoint does not

        var (exit, _, error) = CliRunner.Run("import", "--safetensors", dir["tiny.safetensors"], "--preset", "tiny", "--out", Path.Combine(mount.Path, "run"));
        Assert.True(exit == ExitCodes.Failure, error);
        Assert.Contains("the disk is full", error);
        Assert.Contains("run vae import again", error);
        Assert.Empty(TempFiles(Path.Combine(mount.Path, "run")));
    }
}

/// <summary>Runs only as root (mounting a tmpfs needs it); skips elsewhere with the reason.</summary>
public sealed class FactAsRootAttribute : FactAttribute
{
    public FactAsRootAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Linux (tmpfs)";
        else if (Environment.UserName != "root") Skip = "needs root to mount a small tmpfs: run the tests as root (sudo tests/run; CI runs as root)";
    }
}

/// <summary>A tmpfs of a given size mounted at a fresh directory; unmounted on dispose.</summary>
internal sealed class Tmpfs : IDisposable
{
    public Tmpfs(string path, long bytes)
    {
        Path = path;
        Directory.CreateDirectory(path);
        long kib = (bytes + 4095) / 4096 * 4;   // whole pages
        var (exit, output) = Run("mount", "-t", "tmpfs", "-o", $"size={kib}k", "tmpfs", path);
        Assert.True(exit == 0, $"mount -t tmpfs failed ({exit}): {output}");
    }

    public string Path { get; }

    public void Dispose()
    {
        if (Run("umount", Path).Exit != 0) Run("umount", "-l", Path);
    }

    private static (int Exit, string Output) Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
