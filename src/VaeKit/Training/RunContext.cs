using VaeKit.Config;
using VaeKit.Data;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// A training run as its callbacks see it: the run directory, the configuration, the model, the data and where
/// training stands; and the two things a callback may ask of the loop, a checkpoint or a stop, both honoured at the
/// next point where every step has been read back (the state in memory then matches the numbers reported).
/// </summary>
public sealed class RunContext
{
    private readonly TrainingLoop _loop;

    internal RunContext(TrainingLoop loop, RunStore store, RunConfig config, VaeModel model, Device device, LoadedDataset data,
                        DecodedImages train, DecodedImages validation, bool resumed)
    {
        _loop = loop;
        Store = store;
        Config = config;
        Model = model;
        Device = device;
        Data = data;
        TrainImages = train;
        ValidationImages = validation;
        Resumed = resumed;
    }

    /// <summary>runs/NAME/ and its files.</summary>
    public RunStore Store { get; }

    /// <summary>runs/NAME/.</summary>
    public RunDirectory Directory => Store.Directory;

    /// <summary>The run's configuration (with the resumed run's hardware choices on a resume).</summary>
    public RunConfig Config { get; }

    /// <summary>The fp32 master model: what checkpoints hold and evaluation uses.</summary>
    public VaeModel Model { get; }

    /// <summary>The device training runs on.</summary>
    public Device Device { get; }

    /// <summary>The loaded data (host memory).</summary>
    public LoadedDataset Data { get; }

    /// <summary>The training images on <see cref="Device"/> (the host copy when they did not fit on the GPU).</summary>
    public DecodedImages TrainImages { get; }

    /// <summary>The validation images on <see cref="Device"/>; may hold zero images.</summary>
    public DecodedImages ValidationImages { get; }

    /// <summary>True when this process continued a run from a checkpoint.</summary>
    public bool Resumed { get; }

    /// <summary>Optimizer steps taken (including steps not yet read back on a GPU).</summary>
    public long Step => _loop.Trainer.Step;

    /// <summary>Where training stands as of the last step read back: what a checkpoint written now records.</summary>
    public CheckpointHeader Position => _loop.Position;

    /// <summary>Step of the last.ckpt on disk (written or loaded in this process), or null.</summary>
    public long? LastSavedStep { get; internal set; }

    /// <summary>Sends a notice to every callback's <see cref="IRunCallback.Message"/> (the console shows it).</summary>
    public void Notify(string text) => _loop.Notify(text);

    /// <summary>Sends a warning to every callback's <see cref="IRunCallback.Warning"/>.</summary>
    public void Warn(string text) => _loop.Warn(text);

    /// <summary>Asks for "last" to be written at the next point where all steps are read back.</summary>
    public void RequestCheckpoint() => CheckpointRequested = true;

    internal bool CheckpointRequested { get; set; }

    /// <summary>Asks the run to stop as after Ctrl-C (save "last", outcome Interrupted); <paramref name="reason"/> is shown.</summary>
    public void RequestStop(string reason)
    {
        StopReason ??= reason;
    }

    internal string? StopReason { get; private set; }

}
