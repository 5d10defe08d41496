using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>
/// A gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") over the (h, w)
/// code grid. codes (B, L) → (B, h, w) → embedding (B, C, h, w) → gated layers, each with a vertical and a horizontal
/// stack → ReLU, 1×1, ReLU, 1×1 → logits (B, L, K) in raster order.
/// </summary>
/// <remarks>
/// Causality comes from the kernels' shapes and paddings, not from masked weights, so no weight can ever "leak":
/// with p = n / 2, the vertical stack at (r, c) reads rows r−p..r−1 (layer 1, type A) or r−p..r of the previous vertical
/// features (later layers, type B; those features already hold only rows above), columns c−p..c+p; the horizontal
/// stack reads columns c−p..c−1 (type A) or c−p..c (type B) of its own row, plus the vertical stack at (r, c) through a
/// 1×1 conv. So every position sees the rows above it in a widening window and the positions left of it: no blind spot.
/// Both stacks use gated units tanh(a)·σ(b); the horizontal stack of type-B layers is residual.
/// </remarks>
public sealed class GatedPixelCnn : CodeModel
{
    [ComponentName(Name = "embedding")] private readonly Embedding _embedding;
    [ComponentName(Name = "layers")] private readonly ModuleList<GatedLayer> _layers;
    [ComponentName(Name = "out_hidden")] private readonly Conv2d _outHidden;
    [ComponentName(Name = "out")] private readonly Conv2d _out;
    private readonly int _height, _width;

    /// <param name="config">A config of kind pixelcnn: K codes, an h × w grid, C channels, layers, kernel n.</param>
    public GatedPixelCnn(CodeModelConfig config) : base(nameof(GatedPixelCnn), config)
    {
        if (config.Kind != CodeModelKinds.PixelCnn)
            throw new ArgumentException($"a {nameof(GatedPixelCnn)} needs a config of kind {CodeModelKinds.PixelCnn}", nameof(config));
        _height = config.Height!.Value;
        _width = config.Width!.Value;
        int c = config.Channels;
        _embedding = nn.Embedding(config.Codebook, c);
        _layers = new ModuleList<GatedLayer>();
        for (int i = 0; i < config.Layers; i++)
            _layers.Add(new GatedLayer(c, config.Kernel, first: i == 0));
        _outHidden = nn.Conv2d(c, c, kernel_size: 1);
        _out = nn.Conv2d(c, config.Codebook, kernel_size: 1);
        RegisterComponents();
    }

    /// <summary>The code grid (h, w).</summary>
    public (int Height, int Width) Grid => (_height, _width);

    /// <summary>indices (B, L) int64 in [0, K) → logits (B, L, K); position i depends on raster positions 0..i−1 only.</summary>
    public override Tensor forward(Tensor indices)
    {
        using var scope = NewDisposeScope();
        long b = indices.shape[0];
        var x = _embedding.call(indices.view(b, _height, _width)).permute(0, 3, 1, 2);   // (B, C, h, w)
        Tensor vertical = x, horizontal = x;
        foreach (var layer in _layers)
            (vertical, horizontal) = layer.call(vertical, horizontal);
        var h = nn.functional.relu(_outHidden.call(nn.functional.relu(horizontal)));      // (B, C, h, w)
        var logits = _out.call(h);                                                          // (B, K, h, w)
        return logits.flatten(2).transpose(1, 2).MoveToOuterDisposeScope();               // (B, L, K)
    }
}

/// <summary>
/// One gated PixelCNN layer: (vertical, horizontal) features (B, C, h, w) each → the same. Type A (the first layer)
/// excludes the current row from the vertical stack and the current column from the horizontal one; type B includes
/// them (their inputs already exclude the current position).
/// </summary>
public sealed class GatedLayer : nn.Module<Tensor, Tensor, (Tensor, Tensor)>
{
    [ComponentName(Name = "vertical")] private readonly Conv2d _vertical;              // (rows, n) kernel → 2C
    [ComponentName(Name = "vertical_to_horizontal")] private readonly Conv2d _verticalToHorizontal; // 1×1, 2C → 2C
    [ComponentName(Name = "horizontal")] private readonly Conv2d _horizontal;          // (1, columns) kernel → 2C
    [ComponentName(Name = "horizontal_out")] private readonly Conv2d _horizontalOut;   // 1×1, C → C
    private readonly long[] _verticalPad, _horizontalPad;   // F.pad order: (left, right, top, bottom)
    private readonly bool _first;

    /// <param name="channels">C, the channels of each stack.</param>
    /// <param name="kernel">n, odd.</param>
    /// <param name="first">Type A (the first layer) rather than type B.</param>
    public GatedLayer(int channels, int kernel, bool first) : base(nameof(GatedLayer))
    {
        int p = kernel / 2;
        _first = first;
        int rows = first ? p : p + 1, columns = first ? p : p + 1;
        _vertical = nn.Conv2d(channels, 2 * channels, kernel_size: (rows, kernel));
        _verticalToHorizontal = nn.Conv2d(2 * channels, 2 * channels, kernel_size: 1);
        _horizontal = nn.Conv2d(channels, 2 * channels, kernel_size: (1, columns));
        _horizontalOut = nn.Conv2d(channels, channels, kernel_size: 1);
        // Both types pad p rows on top (p columns each side) and p columns on the left. Type A's kernel is one row
        // (column) shorter, so its output has one row (column) more; dropping the last one leaves the output at (r, c)
        // reading rows r−p..r−1 (columns c−p..c−1), where type B's reads r−p..r (c−p..c).
        _verticalPad = [p, p, p, 0];
        _horizontalPad = [p, 0, 0, 0];
        RegisterComponents();
    }

    /// <summary>(vertical, horizontal) (B, C, h, w) → the next layer's (vertical, horizontal) (B, C, h, w).</summary>
    public override (Tensor, Tensor) forward(Tensor vertical, Tensor horizontal)
    {
        using var scope = NewDisposeScope();
        long h = vertical.shape[2], w = vertical.shape[3];
        // Vertical stack: padded on top (and both sides), so output row r ends at input row r (B) or r − 1 (A).
        var v = _vertical.call(nn.functional.pad(vertical, _verticalPad));                   // (B, 2C, h + 1 or h, w)
        v = v.narrow(2, 0, h);                                                               // (B, 2C, h, w)
        // Horizontal stack: padded on the left, so output column c ends at input column c (B) or c − 1 (A).
        var hz = _horizontal.call(nn.functional.pad(horizontal, _horizontalPad));            // (B, 2C, h, w + 1 or w)
        hz = hz.narrow(3, 0, w) + _verticalToHorizontal.call(v);                             // (B, 2C, h, w)
        var verticalOut = Gate(v);                                                           // (B, C, h, w)
        var horizontalOut = _horizontalOut.call(Gate(hz));                                   // (B, C, h, w)
        if (!_first) horizontalOut = horizontalOut + horizontal;                             // residual (A would leak the current code)
        return (verticalOut.MoveToOuterDisposeScope(), horizontalOut.MoveToOuterDisposeScope());
    }

    /// <summary>(B, 2C, h, w) → tanh(first half) · σ(second half), (B, C, h, w).</summary>
    private static Tensor Gate(Tensor x)
    {
        var halves = x.chunk(2, 1);
        return halves[0].tanh() * halves[1].sigmoid();
    }
}
