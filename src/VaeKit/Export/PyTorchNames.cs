using System.Text.RegularExpressions;

namespace VaeKit.Export;

/// <summary>
/// Translates VaeKit's tensor names into those of the plain-PyTorch twin in <c>bench/pytorch_bench.py</c>, whose
/// encoder and decoder are <c>nn.Sequential</c> lists: a name there is the layer's position in the list.
/// </summary>
/// <remarks>
/// <para>The twin's encoder list is conv_in, then per stage its residual blocks and (except after the last) the
/// downsampling conv, then norm_out, SiLU, Flatten. Its decoder list is, per stage from the last width, its blocks and
/// (except after the first) the upsampling conv, then norm_out, SiLU, conv_out, Sigmoid. The decoder's first Linear is
/// the twin's top-level <c>project</c>. So, with n blocks per stage (tiny: n = 1, 4 stages):</para>
/// <list type="table">
/// <item><term>encoder.conv_in.*</term><description>encoder.0.*</description></item>
/// <item><term>encoder.stages.i.blocks.b.*</term><description>encoder.(1 + i·(n+1) + b).*</description></item>
/// <item><term>encoder.stages.i.downsample.*</term><description>encoder.(1 + i·(n+1) + n).*</description></item>
/// <item><term>encoder.norm_out.*</term><description>encoder.(L·(n+1)).* (the position after the last stage)</description></item>
/// <item><term>project_latent.*</term><description>project_latent.* (unchanged)</description></item>
/// <item><term>decoder.project.*</term><description>project.*</description></item>
/// <item><term>decoder.stages.j.blocks.b.*</term><description>decoder.(j·(n+1) + b).*</description></item>
/// <item><term>decoder.stages.j.upsample.*</term><description>decoder.(j·(n+1) + n).*</description></item>
/// <item><term>decoder.norm_out.*</term><description>decoder.(L·(n+1) − 1).*</description></item>
/// <item><term>decoder.conv_out.*</term><description>decoder.(L·(n+1) + 1).* (after norm_out and SiLU)</description></item>
/// </list>
/// <para>Inside a block the names are the same on both sides (norm1, conv1, norm2, conv2), and so are the leaf names
/// (weight, bias, running_mean, running_var, num_batches_tracked). The positions are computed from the names
/// themselves (how many blocks each stage has, whether it has a down/upsampling conv), so any widths and block
/// counts map; a name outside this scheme is kept as it is.</para>
/// </remarks>
public static partial class PyTorchNames
{
    /// <summary>VaeKit name → twin name for every name in <paramref name="vaekitNames"/> (a model's state_dict keys).</summary>
    public static IReadOnlyDictionary<string, string> Map(IEnumerable<string> vaekitNames)
    {
        var names = vaekitNames.ToList();
        var layout = new Dictionary<(string Side, int Stage), (int Blocks, bool Resample)>();
        foreach (var name in names)
        {
            if (StageBlock().Match(name) is { Success: true } b)
            {
                var key = (b.Groups["side"].Value, int.Parse(b.Groups["stage"].Value));
                var (blocks, resample) = layout.GetValueOrDefault(key);
                layout[key] = (Math.Max(blocks, int.Parse(b.Groups["block"].Value) + 1), resample);
            }
            else if (StageResample().Match(name) is { Success: true } r)
            {
                var key = (r.Groups["side"].Value, int.Parse(r.Groups["stage"].Value));
                layout[key] = (layout.GetValueOrDefault(key).Blocks, true);
            }
        }

        // Sequential position of the first layer of each stage, and the position after the last stage.
        var encoderStart = Starts(layout, "encoder", first: 1, out int encoderEnd);
        var decoderStart = Starts(layout, "decoder", first: 0, out int decoderEnd);

        var map = new Dictionary<string, string>(names.Count);
        foreach (var name in names)
        {
            string mapped = name;
            if (StageBlock().Match(name) is { Success: true } b)
            {
                string side = b.Groups["side"].Value;
                int stage = int.Parse(b.Groups["stage"].Value);
                int start = (side == "encoder" ? encoderStart : decoderStart)[stage];
                mapped = $"{side}.{start + int.Parse(b.Groups["block"].Value)}.{b.Groups["rest"].Value}";
            }
            else if (StageResample().Match(name) is { Success: true } r)
            {
                string side = r.Groups["side"].Value;
                int stage = int.Parse(r.Groups["stage"].Value);
                int start = (side == "encoder" ? encoderStart : decoderStart)[stage];
                mapped = $"{side}.{start + layout[(side, stage)].Blocks}.{r.Groups["rest"].Value}";
            }
            else if (Layer().Match(name) is { Success: true } l)
            {
                string rest = l.Groups["rest"].Value;
                mapped = l.Groups["layer"].Value switch
                {
                    "encoder.conv_in" => $"encoder.0.{rest}",
                    "encoder.norm_out" => $"encoder.{encoderEnd}.{rest}",
                    "decoder.project" => $"project.{rest}",
                    "decoder.norm_out" => $"decoder.{decoderEnd}.{rest}",
                    "decoder.conv_out" => $"decoder.{decoderEnd + 2}.{rest}",   // after norm_out and SiLU
                    _ => name,
                };
            }
            map[name] = mapped;
        }
        if (map.Values.Distinct().Count() != map.Count)
            throw new InvalidOperationException("Two VaeKit tensor names map to the same PyTorch name: " +
                string.Join(", ", map.GroupBy(p => p.Value).Where(g => g.Count() > 1).Select(g => g.Key)));
        return map;
    }

    /// <summary>First Sequential position of each stage of one side; <paramref name="end"/> is the position after them.</summary>
    private static Dictionary<int, int> Starts(Dictionary<(string Side, int Stage), (int Blocks, bool Resample)> layout,
                                               string side, int first, out int end)
    {
        var starts = new Dictionary<int, int>();
        end = first;
        foreach (var ((_, stage), (blocks, resample)) in layout.Where(p => p.Key.Side == side).OrderBy(p => p.Key.Stage))
        {
            starts[stage] = end;
            end += blocks + (resample ? 1 : 0);
        }
        return starts;
    }

    [GeneratedRegex(@"^(?<side>encoder|decoder)\.stages\.(?<stage>\d+)\.blocks\.(?<block>\d+)\.(?<rest>.+)$")]
    private static partial Regex StageBlock();

    [GeneratedRegex(@"^(?<side>encoder|decoder)\.stages\.(?<stage>\d+)\.(downsample|upsample)\.(?<rest>.+)$")]
    private static partial Regex StageResample();

    [GeneratedRegex(@"^(?<layer>encoder\.conv_in|encoder\.norm_out|decoder\.project|decoder\.norm_out|decoder\.conv_out)\.(?<rest>.+)$")]
    private static partial Regex Layer();
}
