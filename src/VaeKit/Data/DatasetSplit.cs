namespace VaeKit.Data;

/// <summary>
/// The seeded train/validation split. Uses its own PRNG (SplitMix64) rather than System.Random, whose algorithm is
/// an implementation detail that may change between .NET versions — a split must stay the same for a given seed.
/// </summary>
internal static class DatasetSplit
{
    /// <summary>
    /// How many of <paramref name="count"/> images go to validation: max(1, round(count·fraction)) when count ≥ 2 and
    /// fraction &gt; 0, else 0.
    /// </summary>
    public static int ValidationCount(int count, double fraction) =>
        count >= 2 && fraction > 0 ? Math.Max(1, (int)Math.Round(count * fraction, MidpointRounding.AwayFromZero)) : 0;

    /// <summary>
    /// mask[i] is true when image i goes to validation: the first <see cref="ValidationCount"/> positions of a seeded
    /// Fisher–Yates permutation (only that prefix is shuffled).
    /// </summary>
    public static bool[] ValidationMask(int count, double fraction, int seed)
    {
        int validation = ValidationCount(count, fraction);
        var mask = new bool[count];
        if (validation == 0) return mask;
        var permutation = new int[count];
        for (int i = 0; i < count; i++) permutation[i] = i;
        var rng = new SplitMix64((ulong)(long)seed);
        for (int i = 0; i < validation; i++)
        {
            int j = i + rng.NextBelow(count - i);
            (permutation[i], permutation[j]) = (permutation[j], permutation[i]);
            mask[permutation[i]] = true;
        }
        return mask;
    }
}
