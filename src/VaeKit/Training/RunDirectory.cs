namespace VaeKit.Training;

/// <summary>
/// The layout of runs/NAME/ (README "Run directory"): config.json, metrics.jsonl, images/, checkpoints/{last,best}.ckpt,
/// tensorboard/.
/// </summary>
public sealed class RunDirectory(string path)
{
    /// <summary>Absolute path of runs/NAME/; an empty path is a <see cref="BadInputException"/>.</summary>
    public string Path { get; } = string.IsNullOrWhiteSpace(path)
        ? throw new BadInputException("The run directory is empty; give a path like runs/NAME.")
        : System.IO.Path.GetFullPath(path);
    /// <summary>config.json: the <see cref="Config.RunConfig"/> of the run.</summary>
    public string Config => System.IO.Path.Combine(Path, "config.json");
    /// <summary>metrics.jsonl: one JSON object per train log row and per epoch.</summary>
    public string Metrics => System.IO.Path.Combine(Path, "metrics.jsonl");
    /// <summary>images/: the per-epoch reconstruction and sample grids.</summary>
    public string Images => System.IO.Path.Combine(Path, "images");
    /// <summary>checkpoints/.</summary>
    public string Checkpoints => System.IO.Path.Combine(Path, "checkpoints");
    /// <summary>checkpoints/last.ckpt: the newest state, what a resume starts from.</summary>
    public string Last => System.IO.Path.Combine(Checkpoints, "last.ckpt");
    /// <summary>checkpoints/best.ckpt: the state with the lowest validation loss.</summary>
    public string Best => System.IO.Path.Combine(Checkpoints, "best.ckpt");
    /// <summary>tensorboard/: TensorBoard event files.</summary>
    public string TensorBoard => System.IO.Path.Combine(Path, "tensorboard");

    /// <summary>images/epoch_NNN_reconstruction.png for 1-based epoch <paramref name="epoch"/>.</summary>
    public string ReconstructionGrid(int epoch) => System.IO.Path.Combine(Images, $"epoch_{epoch:D3}_reconstruction.png");
    /// <summary>images/epoch_NNN_samples.png for 1-based epoch <paramref name="epoch"/>.</summary>
    public string SampleGrid(int epoch) => System.IO.Path.Combine(Images, $"epoch_{epoch:D3}_samples.png");

    /// <summary>
    /// Holds runs/NAME/.lock exclusively until disposed, so two processes never train the same run at once
    /// (both would write the same checkpoints and metrics).
    /// </summary>
    public IDisposable Lock()
    {
        try
        {
            return new FileStream(System.IO.Path.Combine(Path, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None,
                                  1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new BadInputException($"Another vae process is training {Path} right now ({e.Message}); wait for it or stop it first.", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new BadInputException($"Cannot write in {Path}: {e.Message}", e);
        }
    }

    /// <summary>Creates the directory with images/, checkpoints/ and tensorboard/ (existing ones are kept).</summary>
    public void Create()
    {
        Directory.CreateDirectory(Images);
        Directory.CreateDirectory(Checkpoints);
        Directory.CreateDirectory(TensorBoard);
    }

    /// <summary>The checkpoint to load for inference: "best", "last", or a path; best falls back to last.</summary>
    public string Checkpoint(string which = "best")
    {
        if (!Directory.Exists(Path)) throw new BadInputException($"No run directory at {Path}.");
        string chosen = which switch
        {
            "best" => File.Exists(Best) ? Best : Last,
            "last" => Last,
            _ => which,
        };
        if (!File.Exists(chosen))
            throw new BadInputException($"{Path} has no checkpoint yet ({chosen} is missing); train it first or pick another run.");
        return chosen;
    }
}
