using VaeKit.Config;

namespace VaeKit.Training;

/// <summary>
/// Learning rate as a closed-form function of the optimizer step, so a resumed run needs no scheduler state
/// (TorchSharp's LR schedulers have no state_dict): linear warm-up to the peak, then cosine decay to zero at the
/// last step, or constant after warm-up.
/// </summary>
public static class LearningRate
{
    /// <param name="step">0-based index of the step about to be taken.</param>
    public static double At(TrainConfig config, long step, long totalSteps)
    {
        double peak = config.LearningRate;
        if (config.WarmupSteps > 0 && step < config.WarmupSteps)
            return peak * (step + 1) / config.WarmupSteps;
        if (config.Schedule == LrSchedule.Constant)
            return peak;
        long decaySteps = Math.Max(1, totalSteps - config.WarmupSteps);
        double progress = Math.Clamp((double)(step - config.WarmupSteps) / decaySteps, 0, 1);
        return peak * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
