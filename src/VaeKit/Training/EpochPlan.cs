using TorchSharp;
using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// The order and flips of one epoch, drawn from a generator seeded by (seed, epoch) alone, so a run resumed in
/// the middle of an epoch sees exactly the batches it would have seen. Batches are assembled with tensor ops
/// (index_select, permute, convert) — no per-pixel managed code.
/// </summary>
internal sealed class EpochPlan : IDisposable
{
    private readonly DecodedImages _images;
    private readonly Tensor _order;    // (N) int64 permutation
    private readonly Tensor? _flip;    // (N) bool, true = mirror horizontally

    public EpochPlan(DecodedImages images, int batchSize, int seed, int epoch, bool flip)
    {
        _images = images;
        BatchSize = Math.Min(batchSize, images.Count);
        // The last partial batch is dropped: BatchNorm statistics of a ragged few-image batch would be noise.
        StepsPerEpoch = Count(images.Count, batchSize);
        // Drawn on the CPU whatever the device (the same order everywhere), then kept beside the images.
        using var generator = new Generator((ulong)seed * 1_000_003UL + (ulong)epoch);
        using var scope = NewDisposeScope();
        var device = images.Pixels.device;
        _order = randperm(images.Count, generator: generator).to(device).DetachFromDisposeScope();
        _flip = flip ? rand(images.Count, generator: generator).lt(0.5).to(device).DetachFromDisposeScope() : null;
    }

    public int BatchSize { get; }
    public int StepsPerEpoch { get; }

    public static int Count(int images, int batchSize) => Math.Max(1, images / Math.Min(batchSize, images));

    /// <summary>Batch <paramref name="index"/> as (B, C, s, s) float32 in [0, 1] on <paramref name="device"/>.</summary>
    public Tensor Batch(int index, Device device)
    {
        using var scope = NewDisposeScope();
        var indices = _order.narrow(0, (long)index * BatchSize, BatchSize);
        var x = DecodedImages.ToModelInput(_images.Pixels.index_select(0, indices), device);
        if (_flip is not null)
        {
            var mirror = _flip.index_select(0, indices).to(device).view(-1, 1, 1, 1);   // (B, 1, 1, 1)
            x = where(mirror, x.flip(3), x);
        }
        return x.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _order.Dispose();
        _flip?.Dispose();
    }
}
