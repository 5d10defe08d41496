using static TorchSharp.torch;
using VaeKit.Config;
using VaeKit.Models;

namespace VaeKit.Training;

/// <summary>
/// Host-side numbers of one training step, by name (<see cref="MetricNames"/>): loss, the objective's terms
/// (reconstruction, kl, mse, … as the model family names them), psnr, kl_weight, lr and grad_norm.
/// </summary>
public sealed record StepMetrics(long Step, IReadOnlyDictionary<string, double> Values)
{
    /// <summary>Loss per image (the objective's total, as optimised).</summary>
    public double Loss => Values[MetricNames.Loss];
    /// <summary>Reconstruction term per image (0 when the objective has none).</summary>
    public double Reconstruction => Values.GetValueOrDefault(MetricNames.Reconstruction);
    /// <summary>0 for a model without a KL term.</summary>
    public double Kl => Values.GetValueOrDefault(MetricNames.Kl);
    /// <summary>Mean per-pixel squared error on the [0, 1] scale.</summary>
    public double Mse => Values.GetValueOrDefault(MetricNames.Mse);
    /// <summary>dB, from <see cref="Mse"/>.</summary>
    public double Psnr => Values.GetValueOrDefault(MetricNames.Psnr);
    /// <summary>The effective KL weight of the step (after the KL schedule).</summary>
    public double KlWeight => Values.GetValueOrDefault(MetricNames.KlWeight);
    /// <summary>Learning rate of the step (after warm-up and schedule).</summary>
    public double LearningRate => Values.GetValueOrDefault(MetricNames.LearningRate);
    /// <summary>Global gradient norm before clipping.</summary>
    public double GradNorm => Values.GetValueOrDefault(MetricNames.GradNorm);
}

/// <summary>
/// A step whose numbers are still on the device: <see cref="Values"/> (K + 2) float32 = loss, the K objective terms
/// named by <see cref="Terms"/>, gradient norm. Reading many at once with <c>Trainer.Resolve</c> costs one host
/// synchronisation instead of one per step.
/// </summary>
public sealed record PendingStep(long Step, double LearningRate, double KlWeight, IReadOnlyList<string> Terms, Tensor Values) : IDisposable
{
    /// <summary>The values already read back (a checked step), or null.</summary>
    internal float[]? Host { get; init; }

    /// <inheritdoc/>
    public void Dispose() => Values.Dispose();
}

/// <summary>
/// The host side of training steps: reads <see cref="PendingStep"/>s back from the device in one transfer, names their
/// numbers (<see cref="StepMetrics"/>), and stops at the first step whose loss or gradient norm is not finite.
/// </summary>
public static class StepReadback
{
    /// <summary>
    /// Reads pending steps back in one transfer, in order. Throws <see cref="DivergedException"/> for the first step
    /// whose loss or gradient norm is not finite.
    /// </summary>
    public static IReadOnlyList<StepMetrics> Resolve(IReadOnlyList<PendingStep> steps, TrainConfig config)
    {
        var result = Resolve(steps, config, out var divergence);
        return divergence is null ? result : throw divergence;
    }

    /// <summary>
    /// Reads pending steps back in one transfer, in order, up to the first with a number that is not finite (the
    /// loss, a term, a discriminator's number or the gradient norm): the steps before it are returned, <paramref name="divergence"/> names it (the weights after it are not
    /// valid and must not be saved); <paramref name="config"/> is quoted in its advice.
    /// </summary>
    public static IReadOnlyList<StepMetrics> Resolve(IReadOnlyList<PendingStep> steps, TrainConfig config, out DivergedException? divergence)
    {
        divergence = null;
        if (steps.Count == 0) return [];
        float[] host;
        if (steps.All(s => s.Host is not null))
            host = steps.SelectMany(s => s.Host!).ToArray();
        else
            using (var scope = NewDisposeScope())
                host = cat(steps.Select(s => s.Values).ToArray()).cpu().data<float>().ToArray();
        var result = new List<StepMetrics>(steps.Count);
        int offset = 0;
        foreach (var step in steps)
        {
            var values = host.AsSpan(offset, step.Terms.Count + 2);
            offset += values.Length;
            int bad = FirstNonFinite(values);
            if (bad >= 0)
            {
                divergence = Diverged(step, values, bad, config);
                break;
            }
            result.Add(Metrics(step, values));
        }
        return result;
    }

    /// <summary>A step's host numbers: values = loss, the named terms, gradient norm.</summary>
    private static StepMetrics Metrics(PendingStep s, ReadOnlySpan<float> values)
    {
        var named = new Dictionary<string, double>(s.Terms.Count + 5) { [MetricNames.Loss] = values[0] };
        for (int i = 0; i < s.Terms.Count; i++) named[s.Terms[i]] = values[i + 1];
        MetricNames.AddDerived(named);
        named[MetricNames.KlWeight] = s.KlWeight;
        named[MetricNames.LearningRate] = s.LearningRate;
        named[MetricNames.GradNorm] = values[^1];
        return new StepMetrics(s.Step, named);
    }

    /// <summary>Index of the first value that is NaN or infinite, or -1.</summary>
    private static int FirstNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    private static DivergedException Diverged(PendingStep step, ReadOnlySpan<float> values, int bad, TrainConfig config)
    {
        double loss = values[0], gradNorm = values[^1];
        if (bad == 0 || bad == values.Length - 1 || !IsCritic(step.Terms[bad - 1]))
            return new($"Training diverged at step {step.Step}: the loss is {loss} (gradient norm {gradNorm}). " +
                       $"Lower the learning rate ({Settings.Train.LearningRate}, now {config.LearningRate}) or the KL weight ({Settings.Train.KlWeight}, now {config.KlWeight}).");
        return new($"Training diverged at step {step.Step}: {step.Terms[bad - 1]} is {values[bad]} (loss {loss}, gradient norm {gradNorm}). " +
                   $"Lower the discriminator's learning rate ({Settings.Train.DiscriminatorLearningRate}, now {config.DiscriminatorLearningRate}) " +
                   $"or the adversarial weight ({Settings.Train.AdversarialWeight}, now {config.AdversarialWeight}).");
    }

    /// <summary>The numbers of the discriminator and the terms it drives.</summary>
    private static bool IsCritic(string name) => name is MetricNames.GeneratorLoss or MetricNames.AdaptiveWeight or MetricNames.DiscriminatorLoss
        or MetricNames.LogitsReal or MetricNames.LogitsFake or MetricNames.FeatureMatching or MetricNames.Perceptual;
}
