using static TorchSharp.torch;

namespace VaeKit.Models;

/// <summary>
/// What the objective of one step may depend on besides the batch: the effective KL weight after any schedule, the
/// free-bits floor, the step (0-based, before the update) and whether this is a training pass (validation passes
/// weight the KL by the configured kl_weight and use no free bits, so losses are comparable across a schedule).
/// </summary>
public sealed record LossContext(double KlWeight, double FreeBits = 0, long Step = 0, bool Training = true);

/// <summary>
/// A batch's loss as named terms: <see cref="Loss"/> is what is minimised (a scalar), <see cref="Terms"/> are batch
/// means reported under their names in metrics.jsonl, TensorBoard, W&amp;B, the HTML report and the console (see
/// <see cref="MetricNames"/>). A term may be reported without entering the loss (a diagnostic such as the codebook
/// perplexity), and the loss may use a variant of a term (free bits floor the KL in the loss; the reported KL is the
/// true one).
/// </summary>
public sealed record Objective(Tensor Loss, IReadOnlyList<(string Name, Tensor Value)> Terms)
{
    /// <summary>The scalar reported under <paramref name="name"/>, or null.</summary>
    public Tensor? this[string name] => Terms.FirstOrDefault(t => t.Name == name).Value;
}
