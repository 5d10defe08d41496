using System.Globalization;

namespace VaeKit.Config;

/// <summary>
/// The effective KL weight as a closed-form function of the optimizer step (like <see cref="Training.LearningRate"/>), so a
/// resumed run needs no schedule state and stays bit-exact. Written in config.json as text:
/// <c>constant</c>, <c>linear-warmup:STEPS</c> or <c>cyclical:CYCLES[:RATIO]</c>.
/// </summary>
/// <remarks>
/// linear-warmup (Bowman et al. 2016, "KL annealing"): kl_weight · min(1, (step + 1) / STEPS).
/// cyclical (Fu et al. 2019): the run is cut into CYCLES equal cycles; in each the weight rises linearly from 0 to
/// kl_weight over the first RATIO of the cycle (default 0.5) and stays there for the rest.
/// </remarks>
public sealed record KlSchedule(KlScheduleKind Kind, int WarmupSteps = 0, int Cycles = 0, double Ratio = 0.5)
{
    /// <summary>kl_weight from the first step (the default).</summary>
    public static readonly KlSchedule Constant = new(KlScheduleKind.Constant);

    /// <exception cref="BadInputException">the text is not one of the three forms.</exception>
    public static KlSchedule Parse(string? text)
    {
        string s = (text ?? "constant").Trim().ToLowerInvariant();
        var parts = s.Split(':');
        switch (parts[0])
        {
            case "constant" when parts.Length == 1:
                return Constant;
            case "linear-warmup" when parts.Length == 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int steps) && steps > 0:
                return new KlSchedule(KlScheduleKind.LinearWarmup, WarmupSteps: steps);
            case "cyclical" when parts.Length is 2 or 3 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int cycles) && cycles > 0:
                double ratio = 0.5;
                if (parts.Length == 3 && !(double.TryParse(parts[2], NumberStyles.Float, CultureInfo.InvariantCulture, out ratio) && ratio > 0 && ratio <= 1))
                    break;
                return new KlSchedule(KlScheduleKind.Cyclical, Cycles: cycles, Ratio: ratio);
        }
        throw new BadInputException(
            $"{Settings.Train.KlSchedule} '{text}' is not understood: use constant, linear-warmup:STEPS (e.g. linear-warmup:2000) " +
            $"or cyclical:CYCLES[:RATIO] (e.g. cyclical:4:0.5, RATIO in (0, 1]).");
    }

    /// <summary>Effective KL weight for the step about to be taken (0-based), in a run of <paramref name="totalSteps"/>.</summary>
    public double At(double klWeight, long step, long totalSteps)
    {
        switch (Kind)
        {
            case KlScheduleKind.LinearWarmup:
                return klWeight * Math.Min(1.0, (double)(step + 1) / WarmupSteps);
            case KlScheduleKind.Cyclical:
                double period = Math.Max(1.0, (double)totalSteps / Cycles);
                double position = (step % period) / period;                 // [0, 1) within the cycle
                return klWeight * Math.Min(1.0, (position + 1.0 / period) / Ratio);
            default:
                return klWeight;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        KlScheduleKind.LinearWarmup => $"linear-warmup:{WarmupSteps}",
        KlScheduleKind.Cyclical => string.Create(CultureInfo.InvariantCulture, $"cyclical:{Cycles}:{Ratio}"),
        _ => "constant",
    };
}

/// <summary>The shape of a <see cref="KlSchedule"/>.</summary>
public enum KlScheduleKind
{
    /// <summary>kl_weight from the first step.</summary>
    Constant,
    /// <summary>Linear rise from 0 to kl_weight over <see cref="KlSchedule.WarmupSteps"/> steps.</summary>
    LinearWarmup,
    /// <summary>Repeated linear rises over <see cref="KlSchedule.Cycles"/> cycles of the run.</summary>
    Cyclical,
}
