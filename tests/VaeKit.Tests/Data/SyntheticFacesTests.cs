using VaeKit.Data;

namespace VaeKit.Tests.Data;

public class SyntheticFacesTests
{
    private static byte[] Render(int seed, int index, int size)
    {
        var rgb = new byte[size * size * 3];
        SyntheticFaces.Render(seed, index, size, rgb);
        return rgb;
    }

    [Theory]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(64)]
    public void Same_seed_index_and_size_give_identical_bytes(int size) =>
        Assert.Equal(Render(7, 3, size), Render(7, 3, size));

    [Fact]
    public void Parallel_rendering_matches_sequential_rendering()
    {
        const int n = 64, size = 32, bytes = size * size * 3;
        var parallel = new byte[n * bytes];
        Parallel.For(0, n, i => SyntheticFaces.Render(11, i, size, parallel.AsSpan(i * bytes, bytes)));
        for (int i = 0; i < n; i++)
            Assert.Equal(Render(11, i, size), parallel.AsSpan(i * bytes, bytes).ToArray());
    }

    [Fact]
    public void Different_indices_give_different_faces()
    {
        var faces = Enumerable.Range(0, 32).Select(i => Convert.ToHexString(Render(1, i, 32))).ToList();
        Assert.Equal(faces.Count, faces.Distinct().Count());
    }

    [Fact]
    public void Different_seeds_give_different_sets()
    {
        // Not merely the same faces under shifted indices: no face of one set appears in the other.
        var a = Enumerable.Range(0, 32).Select(i => Convert.ToHexString(Render(1, i, 16))).ToHashSet();
        var b = Enumerable.Range(0, 32).Select(i => Convert.ToHexString(Render(2, i, 16)));
        Assert.DoesNotContain(b, a.Contains);
    }

    [Theory]
    [InlineData(32, 0)]
    [InlineData(32, 32 * 32 * 3 - 1)]
    [InlineData(32, 32 * 32 * 3 + 1)]
    [InlineData(32, 32 * 32 * 4)]   // RGBA-sized
    public void Wrong_destination_length_throws(int size, int length) =>
        Assert.Throws<ArgumentException>("dest", () => SyntheticFaces.Render(0, 0, size, new byte[length]));

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(257)]
    public void Unsupported_size_throws(int size) =>
        Assert.Throws<ArgumentOutOfRangeException>("size", () => SyntheticFaces.Render(0, 0, size, new byte[Math.Max(0, size * size * 3)]));

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(64)]
    [InlineData(256)]
    public void Every_supported_size_gives_a_detailed_picture(int size)
    {
        var rgb = Render(3, 5, size);
        double mean = rgb.Average(v => (double)v);
        double std = Math.Sqrt(rgb.Average(v => (v - mean) * (v - mean)));
        int colours = rgb.Chunk(3).Select(p => (p[0] << 16) | (p[1] << 8) | p[2]).Distinct().Count();
        Assert.True(std > 25, $"std {std:F1}");
        Assert.True(colours > Math.Min(size * size / 4, 200), $"{colours} colours");
    }

    [Fact]
    public void A_face_looks_the_same_at_every_size()
    {
        // The parameters are size-independent, so halving a 64 px face must give (almost) the 32 px face.
        double total = 0;
        for (int i = 0; i < 8; i++)
        {
            byte[] big = Render(5, i, 64), small = Render(5, i, 32);
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int sum = big[(2 * y * 64 + 2 * x) * 3 + c] + big[(2 * y * 64 + 2 * x + 1) * 3 + c]
                                  + big[((2 * y + 1) * 64 + 2 * x) * 3 + c] + big[((2 * y + 1) * 64 + 2 * x + 1) * 3 + c];
                        total += Math.Abs(sum / 4.0 - small[(y * 32 + x) * 3 + c]);
                    }
        }
        double meanAbsDiff = total / (8 * 32 * 32 * 3);
        Assert.True(meanAbsDiff < 2, $"mean absolute difference {meanAbsDiff:F2}");
    }

    [Fact]
    public void Faces_vary_around_a_shared_face_layout()
    {
        const int n = 64, size = 32, bytes = size * size * 3;
        var mean = new double[bytes];
        var sq = new double[bytes];
        for (int i = 0; i < n; i++)
        {
            var rgb = Render(123, i, size);
            for (int p = 0; p < bytes; p++)
            {
                mean[p] += rgb[p] / (double)n;
                sq[p] += rgb[p] * (double)rgb[p] / n;
            }
        }
        double std = Enumerable.Range(0, bytes).Average(p => Math.Sqrt(sq[p] - mean[p] * mean[p]));
        Assert.True(std > 35, $"mean per-pixel std {std:F1}");

        // Warmth (red minus blue) of the mean image: skin dominates the centre, while the backgrounds in the corners
        // have random hues that average out to grey.
        double Warmth(int y0, int x0, int h, int w)
        {
            double t = 0;
            for (int y = y0; y < y0 + h; y++)
                for (int x = x0; x < x0 + w; x++)
                    t += mean[(y * size + x) * 3] - mean[(y * size + x) * 3 + 2];
            return t / (h * w);
        }
        double centre = Warmth(15, 12, 6, 8);
        double corners = (Warmth(0, 0, 4, 4) + Warmth(0, size - 4, 4, 4)) / 2;
        Assert.True(centre - corners > 20, $"centre warmth {centre:F1}, corner warmth {corners:F1}");
    }
}
