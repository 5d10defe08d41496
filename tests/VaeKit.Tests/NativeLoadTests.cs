using TorchSharp;
using static TorchSharp.torch;

namespace VaeKit.Tests;

public class NativeLoadTests
{
    // Fails on Debian 12 unless the build marked GLIBCXX_3.4.32 weak in libLibTorchSharp.so (build/*.targets).
    [Fact]
    public void Libtorch_loads_and_runs_a_convolution()
    {
        using var scope = NewDisposeScope();
        var x = ones(1, 1, 3, 3);
        var w = ones(1, 1, 3, 3);
        var y = nn.functional.conv2d(x, w, padding: [1, 1]);
        Assert.Equal(new long[] { 1, 1, 3, 3 }, y.shape);
        Assert.Equal(9f, y[0, 0, 1, 1].item<float>());   // centre sees all nine ones
        Assert.Equal(4f, y[0, 0, 0, 0].item<float>());   // corner sees four
    }
}
