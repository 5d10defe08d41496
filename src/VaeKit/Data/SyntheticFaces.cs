namespace VaeKit.Data;

// TEMPORARY STAND-IN, written on branch `data` so the loader builds and its tests run. The real renderer is written
// on branch `synth` with this exact signature and replaces this file at merge; nothing here is meant to survive.
public static class SyntheticFaces
{
    /// <summary>
    /// Renders face number <paramref name="index"/> of the set seeded by <paramref name="seed"/> as size×size RGB
    /// bytes (row-major, 3 bytes/pixel) into <paramref name="dest"/> (length size·size·3). Deterministic in
    /// (seed, index, size).
    /// </summary>
    public static void Render(int seed, int index, int size, Span<byte> dest)
    {
        if (dest.Length != size * size * 3) throw new ArgumentException($"dest must hold {size * size * 3} bytes", nameof(dest));
        // A diagonal gradient whose phase depends on (seed, index): enough to tell images apart in tests.
        int phase = unchecked(seed * 31 + index * 7);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int o = (y * size + x) * 3;
                dest[o] = (byte)(x * 255 / Math.Max(1, size - 1));
                dest[o + 1] = (byte)(y * 255 / Math.Max(1, size - 1));
                dest[o + 2] = (byte)(phase + x + y);
            }
    }

    /// <summary>Bump when the drawing changes (part of the decode-cache key).</summary>
    public const int Version = 1;
}
