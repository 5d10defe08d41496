using VaeKit.Data;
using VaeKit.Imaging;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// At each epoch end, runs/NAME/images/epoch_NNN_reconstruction.png (32 validation originals above their
/// reconstructions, the same images every epoch) and epoch_NNN_samples.png (64 decodes of a draw from the prior with
/// the same seed every epoch: one fixed draw for a fixed prior such as N(0, I); a prior fitted during training, like
/// the VQ-VAE's, is drawn as it stands at that epoch). The training loop writes them after the family's own epoch work
/// and hands their paths to every output in <see cref="EpochReport.Images"/>.
/// </summary>
internal sealed class EpochGrids : IDisposable
{
    private const int Columns = 8;
    private const int ReconstructionImages = 32;
    private const int SampleImages = 64;

    private readonly RunContext _run;
    private Tensor? _gridImages;    // fixed images for the reconstruction grid

    public EpochGrids(RunContext run)
    {
        _run = run;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var source = _run.ValidationImages.Count > 0 ? _run.ValidationImages : _run.TrainImages;
        _gridImages = DecodedImages.ToModelInput(source.Pixels.narrow(0, 0, Math.Min(ReconstructionImages, source.Count)), _run.Device).DetachFromDisposeScope();
    }

    /// <summary>Writes epoch <paramref name="epoch"/>'s two grids; their paths by name ("reconstruction", "samples").</summary>
    public IReadOnlyDictionary<string, string> Write(int epoch)
    {
        string reconstruction = _run.Directory.ReconstructionGrid(epoch), samples = _run.Directory.SampleGrid(epoch);
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
        {
            var model = _run.Model;
            model.eval();
            int scale = Math.Max(1, 64 / _run.Config.Model.ImageSize);   // 32 px faces are drawn 2× so they can be seen
            var pairs = ImageGrid.Interleave(_gridImages!, model.call(_gridImages!).Reconstruction, Columns);
            ImageGrid.SavePng(ImageGrid.Make(pairs, Columns, scale: scale), reconstruction);
            using var generator = new Generator((ulong)_run.Config.Train.Seed + 7919UL);   // the same seed every epoch
            var sampleZ = model.SamplePrior(SampleImages, 1.0, generator, _run.Device);
            ImageGrid.SavePng(ImageGrid.Make(model.Decode(sampleZ), Columns, scale: scale), samples);
        }
        return new Dictionary<string, string> { ["reconstruction"] = reconstruction, ["samples"] = samples };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _gridImages?.Dispose();
        _gridImages = null;
    }
}
