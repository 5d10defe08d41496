using VaeKit.Data;
using VaeKit.Models;
using static TorchSharp.torch;

namespace VaeKit.Training;

/// <summary>
/// A no-grad pass over images in evaluation mode (running BatchNorm statistics, z = mu): the validation numbers of
/// an epoch end, by name, as the objective defines them at the configured KL weight.
/// </summary>
public static class ValidationPass
{
    /// <summary>
    /// Metrics of one batch x (B, C, s, s) added to <paramref name="sums"/>; <paramref name="klWeight"/> and
    /// <paramref name="step"/> go to the objective. Leaves the model in evaluation mode (the next training step sets
    /// training mode).
    /// </summary>
    public static void BatchMetrics(VaeModel model, double klWeight, long step, Tensor x, MetricSums sums)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var objective = model.Objective(model.call(x), x, new LossContext(klWeight, 0, step, Training: false));
        var host = stack([objective.Loss, .. objective.Terms.Select(t => t.Value)]).to(float64).cpu().data<double>().ToArray();
        sums.Add(x.shape[0], [MetricNames.Loss, .. objective.Terms.Select(t => t.Name)], host);
    }

    /// <summary>Metrics of a whole split with <see cref="BatchMetrics"/>, in batches of <paramref name="batchSize"/>.</summary>
    public static EvalMetrics Evaluate(VaeModel model, double klWeight, long step, DecodedImages images, int batchSize, Device device)
    {
        var sums = new MetricSums();
        for (int start = 0; start < images.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            BatchMetrics(model, klWeight, step, DecodedImages.ToModelInput(images.Pixels.narrow(0, start, Math.Min(batchSize, images.Count - start)), device), sums);
        }
        return sums.Result();
    }
}

/// <summary>Running sums of named batch means over a split, weighted by batch size; split means come out at the end.</summary>
public sealed class MetricSums
{
    private readonly Dictionary<string, double> _sums = new();
    private readonly List<string> _order = new();

    /// <summary>Images added so far.</summary>
    public long Images { get; private set; }

    /// <summary>Adds one batch: <paramref name="means"/>[i] is the batch mean of <paramref name="names"/>[i].</summary>
    public void Add(long images, IReadOnlyList<string> names, IReadOnlyList<double> means)
    {
        Images += images;
        for (int i = 0; i < names.Count; i++)
        {
            if (!_sums.ContainsKey(names[i])) _order.Add(names[i]);
            _sums[names[i]] = _sums.GetValueOrDefault(names[i]) + means[i] * images;
        }
    }

    /// <summary>The split's means by name, with psnr from the mean per-pixel mse.</summary>
    public EvalMetrics Result()
    {
        if (Images == 0) throw new InvalidOperationException("no images were evaluated");
        var values = _order.ToDictionary(name => name, name => _sums[name] / Images);
        MetricNames.AddDerived(values);
        return new EvalMetrics(values, Images);
    }
}

/// <summary>Split-level means by name (<see cref="MetricNames"/>): loss and the objective's terms per image, mse per
/// pixel, psnr (dB) from that mse.</summary>
public sealed record EvalMetrics(IReadOnlyDictionary<string, double> Values, long Images)
{
    /// <summary>Loss per image.</summary>
    public double Loss => Values[MetricNames.Loss];
    /// <summary>Reconstruction term per image (0 when the objective has none).</summary>
    public double Reconstruction => Values.GetValueOrDefault(MetricNames.Reconstruction);
    /// <summary>0 for a model without a KL term.</summary>
    public double Kl => Values.GetValueOrDefault(MetricNames.Kl);
    /// <summary>Mean per-pixel squared error on the [0, 1] scale.</summary>
    public double Mse => Values.GetValueOrDefault(MetricNames.Mse);
    /// <summary>dB, from <see cref="Mse"/>.</summary>
    public double Psnr => Values.GetValueOrDefault(MetricNames.Psnr);
}
