namespace VaeKit.Data;

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed 64-bit generator; fixed forever by its definition.</summary>
/// Shared by the split and <see cref="SyntheticFaces"/>: both must produce the same numbers on every .NET version.
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next() => Mix(_state += 0x9E3779B97F4A7C15UL);

    /// <summary>The SplitMix64 finaliser: a bijective 64-bit mix, also good for hashing seeds.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, bound) without modulo bias (rejects the top partial block of 2^64).</summary>
    public int NextBelow(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bound, 1);
        ulong b = (ulong)bound;
        ulong limit = ulong.MaxValue - ulong.MaxValue % b;   // values ≥ limit would favour small results
        ulong x;
        do x = Next(); while (x >= limit);
        return (int)(x % b);
    }
}
