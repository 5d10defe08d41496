using System.Text.Json.Nodes;
using SkiaSharp;
using VaeKit.Data;
using VaeKit.Tests.Data;

namespace VaeKit.Tests.Cli;

/// <summary><c>vae fd</c> on real image sets: identical sets score 0, a degraded copy scores worse the more it is
/// degraded, and bad input is one line with exit 2.</summary>
public class FdCliTests
{
    /// <summary>Synthetic faces 0..n−1 (the set vae fd's synthetic:N loads), each blurred by <paramref name="sigma"/> px, as PNGs.</summary>
    private static void WriteFaces(string folder, int n, float sigma)
    {
        var files = new Dictionary<string, byte[]>();
        var rgb = new byte[32 * 32 * 3];
        for (int i = 0; i < n; i++)
        {
            SyntheticFaces.Render(VaeKit.Config.DataConfig.SplitSeed, i, 32, rgb);
            using var bitmap = new SKBitmap(new SKImageInfo(32, 32, SKColorType.Rgba8888, SKAlphaType.Opaque));
            for (int p = 0; p < 32 * 32; p++) bitmap.SetPixel(p % 32, p / 32, new SKColor(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]));
            using var blurred = new SKBitmap(bitmap.Info);
            using (var canvas = new SKCanvas(blurred))
            using (var paint = new SKPaint { ImageFilter = sigma > 0 ? SKImageFilter.CreateBlur(sigma, sigma, SKShaderTileMode.Clamp) : null })
                canvas.DrawBitmap(bitmap, 0, 0, paint);
            using var data = blurred.Encode(SKEncodedImageFormat.Png, 100);
            files[$"face{i:D4}.png"] = data.ToArray();
        }
        TestImages.WriteFolder(folder, files);
    }

    private static double Fd(params string[] args)
    {
        var report = Json(args);
        Assert.Equal("shipped:faces", report["fd_net"]!.GetValue<string>());
        return report["fd"]!.GetValue<double>();
    }

    [Fact]
    public void Blurring_the_same_faces_raises_the_distance_step_by_step()
    {
        using var dir = new TempDir();
        WriteFaces(dir["sharp"], 300, 0);
        WriteFaces(dir["soft"], 300, 0.8f);
        WriteFaces(dir["blurred"], 300, 2f);
        string cache = dir["cache"];
        double same = Fd("--data", "synthetic:300", "--reference", dir["sharp"], "--cache-dir", cache);
        double soft = Fd("--data", "synthetic:300", "--reference", dir["soft"], "--cache-dir", cache);
        double blurred = Fd("--data", "synthetic:300", "--reference", dir["blurred"], "--cache-dir", cache);
        Assert.True(same < 1e-6, $"the same faces as PNGs: fd {same}");
        Assert.True(soft > 10 * (same + 1e-3) && blurred > soft, $"fd sharp {same}, soft {soft}, blurred {blurred}");
        // Symmetric, and --limit measures fewer images.
        Assert.Equal(blurred, Fd("--data", dir["blurred"], "--reference", "synthetic:300", "--cache-dir", cache), 6);
        var (exit, output, _) = CliRunner.Run("fd", "--data", "synthetic:300", "--reference", dir["blurred"], "--limit", "100", "--cache-dir", cache, "--json");
        Assert.Equal(0, exit);
        Assert.Equal(100, JsonNode.Parse(output)!["data_images"]!.GetValue<int>());

        // KID and precision/recall come in the same features: precision and recall 1 for the same faces; further from
        // them the blurrier the copy. (The KID of a set with itself is negative, not 0: the unbiased estimator leaves
        // out each image's kernel with itself within a set, but not across the two.)
        var identical = Json("--data", "synthetic:300", "--reference", dir["sharp"], "--cache-dir", cache);
        var softer = Json("--data", dir["soft"], "--reference", "synthetic:300", "--cache-dir", cache);
        var blurrier = Json("--data", dir["blurred"], "--reference", "synthetic:300", "--cache-dir", cache);
        double Get(JsonNode n, string key) => n[key]!.GetValue<double>();
        Assert.True(Get(identical, "kid") < 0, identical.ToJsonString());
        Assert.Equal((1.0, 1.0), (Get(identical, "precision"), Get(identical, "recall")));
        Assert.True(Get(softer, "kid") > 0 && Get(blurrier, "kid") > Get(softer, "kid"),
                    $"kid soft {Get(softer, "kid")}, blurred {Get(blurrier, "kid")}");
        Assert.True(Get(blurrier, "precision") < Get(softer, "precision") && Get(softer, "precision") < 1,
                    $"precision soft {Get(softer, "precision")}, blurred {Get(blurrier, "precision")}");
        Assert.Equal(150, blurrier["kid_subset_size"]!.GetValue<int>());      // half the set, so the 100 subsets differ
        Assert.True(Get(blurrier, "kid_std") > 0, blurrier.ToJsonString());
    }

    private static JsonNode Json(params string[] args)
    {
        var (exit, output, error) = CliRunner.Run(["fd", .. args, "--json"]);
        Assert.True(exit == 0, output + error);
        return JsonNode.Parse(output)!;
    }

    [Fact]
    public void The_note_says_when_the_network_never_saw_such_images_even_when_it_was_named()
    {
        using var dir = new TempDir();
        WriteFaces(dir["faces"], 40, 0);
        var named = Json("--data", "synthetic:40", "--reference", dir["faces"], "--net", "faces", "--cache-dir", "");
        Assert.Contains("never saw folder images", named["fd_note"]!.GetValue<string>());
        var own = Json("--data", "synthetic:40", "--reference", "synthetic:50", "--net", "faces", "--cache-dir", "");
        Assert.Null(own["fd_note"]);
    }

    [Theory]
    [InlineData("--net", "banana", "neither a file nor a shipped network")]
    [InlineData("--limit", "1", "fd.limit must be at least 2")]
    public void Bad_input_is_one_line_and_exit_2(string flag, string value, string expected)
    {
        var (exit, _, error) = CliRunner.Run("fd", "--data", "synthetic:20", "--reference", "synthetic:30", flag, value, "--cache-dir", "");
        Assert.Equal(2, exit);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error);
    }
}
