using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace VaeKit.Priors;

/// <summary>
/// A small causal Transformer over the L flat code positions (decoder-only, pre-norm, as in GPT-2). The input is
/// shifted right behind a start token, so the logits at position i see the codes 0..i−1 only:
/// codes (B, L) → tokens [start, c_0, …, c_{L−2}] → token + learned position embeddings (B, L, C) → blocks of
/// x + attn(LN(x)), x + MLP(LN(x)) with causal self-attention → LN → head (B, L, K).
/// </summary>
public sealed class CodeTransformer : CodeModel
{
    [ComponentName(Name = "token")] private readonly Embedding _token;          // K + 1 rows: the K codes and the start token
    [ComponentName(Name = "position")] private readonly Embedding _position;    // L rows
    [ComponentName(Name = "blocks")] private readonly ModuleList<CausalBlock> _blocks;
    [ComponentName(Name = "norm_out")] private readonly LayerNorm _normOut;
    [ComponentName(Name = "head")] private readonly Linear _head;

    /// <param name="config">A config of kind transformer: K codes, L positions, width C, layers, heads.</param>
    public CodeTransformer(CodeModelConfig config) : base(nameof(CodeTransformer), config)
    {
        if (config.Kind != CodeModelKinds.Transformer)
            throw new ArgumentException($"a {nameof(CodeTransformer)} needs a config of kind {CodeModelKinds.Transformer}", nameof(config));
        int c = config.Channels;
        _token = nn.Embedding(config.Codebook + 1, c);
        _position = nn.Embedding(config.Positions, c);
        _blocks = new ModuleList<CausalBlock>();
        for (int i = 0; i < config.Layers; i++)
            _blocks.Add(new CausalBlock(c, config.Heads));
        _normOut = nn.LayerNorm(c);
        _head = nn.Linear(c, config.Codebook);
        RegisterComponents();
        using (no_grad())
        {
            // Small embeddings (std 0.02, as GPT-2) keep the residual stream near unit scale at the start.
            nn.init.normal_(_token.weight!, 0, 0.02);
            nn.init.normal_(_position.weight!, 0, 0.02);
        }
    }

    /// <summary>indices (B, L) int64 in [0, K) → logits (B, L, K); position i depends on indices 0..i−1 only.</summary>
    public override Tensor forward(Tensor indices)
    {
        using var scope = NewDisposeScope();
        long b = indices.shape[0], l = indices.shape[1];
        var start = full(b, 1, Codebook, dtype: ScalarType.Int64, device: indices.device);       // (B, 1) the start token
        var tokens = cat([start, indices.narrow(1, 0, l - 1)], 1);                                // (B, L) shifted right
        var positions = arange(l, dtype: ScalarType.Int64, device: indices.device);              // (L)
        var x = _token.call(tokens) + _position.call(positions).unsqueeze(0);                    // (B, L, C)
        foreach (var block in _blocks)
            x = block.call(x);
        return _head.call(_normOut.call(x)).MoveToOuterDisposeScope();                          // (B, L, K)
    }
}

/// <summary>One pre-norm Transformer block: x + attention(LN(x)) with a causal mask, then x + MLP(LN(x)), MLP 4× wide with GELU.</summary>
public sealed class CausalBlock : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "norm1")] private readonly LayerNorm _norm1;
    [ComponentName(Name = "qkv")] private readonly Linear _qkv;
    [ComponentName(Name = "proj")] private readonly Linear _proj;
    [ComponentName(Name = "norm2")] private readonly LayerNorm _norm2;
    [ComponentName(Name = "fc")] private readonly Linear _fc;
    [ComponentName(Name = "fc_out")] private readonly Linear _fcOut;
    private readonly int _heads;

    /// <param name="channels">Model width C.</param>
    /// <param name="heads">Attention heads; must divide C.</param>
    public CausalBlock(int channels, int heads) : base(nameof(CausalBlock))
    {
        _heads = heads;
        _norm1 = nn.LayerNorm(channels);
        _qkv = nn.Linear(channels, 3 * channels);
        _proj = nn.Linear(channels, channels);
        _norm2 = nn.LayerNorm(channels);
        _fc = nn.Linear(channels, 4 * channels);
        _fcOut = nn.Linear(4 * channels, channels);
        RegisterComponents();
    }

    /// <summary>(B, L, C) → (B, L, C); position i attends to positions 0..i.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], c = x.shape[2];
        var qkv = _qkv.call(_norm1.call(x)).view(b, l, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4); // (3, B, nh, L, hs)
        var attended = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_casual: true); // (B, nh, L, hs)
        var h = x + _proj.call(attended.transpose(1, 2).reshape(b, l, c));                               // (B, L, C)
        h = h + _fcOut.call(nn.functional.gelu(_fc.call(_norm2.call(h))));
        return h.MoveToOuterDisposeScope();
    }
}
