using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SkiaSharp;
using VaeKit.Cli.Serving;
using VaeKit.Serving;

namespace VaeKit.Tests.Serving;

/// <summary>The JSON/PNG API of <c>vae serve</c> over a real Kestrel on 127.0.0.1, as the page and a script use it.</summary>
[Collection("serve")]
public class ServeApiTests(ServeFixture fx)
{
    private static HttpContent Json(object body) => JsonContent.Create(body);

    private async Task<byte[]> Decode(int run, float[] z)
    {
        using var response = await fx.Http.PostAsync($"api/runs/{run}/decode", Json(new { z }));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsByteArrayAsync();
    }

    private static SKBitmap Png(byte[] bytes) => SKBitmap.Decode(bytes) ?? throw new Xunit.Sdk.XunitException("not a PNG");

    private static float[] Filled(int n, float v) => Enumerable.Repeat(v, n).ToArray();

    [Fact]
    public async Task The_runs_come_with_their_dimensions_ranked_by_kl_or_code_variance()
    {
        using var doc = JsonDocument.Parse(await fx.Http.GetStringAsync("api/runs"));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(2, runs.Count);
        Assert.True(doc.RootElement.GetProperty("shared_latent").GetBoolean());
        Assert.Equal(["vae", "ae"], runs.Select(r => r.GetProperty("family").GetString()));
        Assert.Equal(["kl", "variance"], runs.Select(r => r.GetProperty("score").GetString()));
        foreach (var run in runs)
        {
            Assert.Equal(8, run.GetProperty("latent").GetInt32());
            Assert.Equal(32, run.GetProperty("image_size").GetInt32());
            var dims = run.GetProperty("dimensions").EnumerateArray().ToList();
            Assert.Equal(Enumerable.Range(0, 8), dims.Select(d => d.GetProperty("index").GetInt32()).Order());
            var scores = dims.Select(d => d.GetProperty("score").GetDouble()).ToList();
            Assert.Equal(scores.OrderDescending(), scores);
            Assert.All(dims, d => Assert.True(d.GetProperty("std").GetDouble() > 0));
        }
        // The AE's ranking is its codes' variance: the square of the spread the sliders use.
        var ae = runs[1].GetProperty("dimensions")[0];
        Assert.Equal(ae.GetProperty("std").GetDouble() * ae.GetProperty("std").GetDouble(), ae.GetProperty("score").GetDouble(), 6);
    }

    [Fact]
    public async Task Decoding_is_deterministic_and_the_image_follows_the_code()
    {
        var zero = await Decode(0, Filled(8, 0));
        Assert.Equal(zero, await Decode(0, Filled(8, 0)));
        var moved = Filled(8, 0);
        moved[fx.Models[0].Ranked[0].Index] = 3;
        var other = await Decode(0, moved);
        Assert.NotEqual(zero, other);
        using var a = Png(zero);
        using var b = Png(other);
        Assert.Equal((32, 32), (a.Width, a.Height));
        Assert.Equal((32, 32), (b.Width, b.Height));
        // Two runs decode the same code differently (they are different models).
        Assert.NotEqual(zero, await Decode(1, Filled(8, 0)));
    }

    [Fact]
    public async Task Samples_are_seeded_draws_scaled_by_the_temperature()
    {
        async Task<float[]> Sample(object body)
        {
            using var response = await fx.Http.PostAsync("api/runs/0/sample", Json(body));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("z").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        }
        var one = await Sample(new { temperature = 1, seed = 7 });
        Assert.Equal(8, one.Length);
        Assert.Equal(one, await Sample(new { temperature = 1, seed = 7 }));
        Assert.NotEqual(one, await Sample(new { temperature = 1, seed = 8 }));
        var half = await Sample(new { temperature = 0.5, seed = 7 });
        Assert.All(one.Zip(half), p => Assert.Equal(p.First / 2, p.Second, 5));
        Assert.All(await Sample(new { temperature = 0, seed = 7 }), v => Assert.Equal(0, v));
    }

    [Fact]
    public async Task Encoding_an_image_gives_its_code_and_the_reconstruction_decoded_from_it()
    {
        var example = await fx.Http.GetByteArrayAsync("api/runs/0/examples/0");
        foreach (int run in new[] { 0, 1 })
        {
            using var response = await fx.Http.PostAsync($"api/runs/{run}/encode", new ByteArrayContent(example));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            var z = body.GetProperty("z").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(8, z.Length);
            string reconstruction = body.GetProperty("reconstruction").GetString()!;
            Assert.StartsWith("data:image/png;base64,", reconstruction);
            Assert.Equal(await Decode(run, z), Convert.FromBase64String(reconstruction["data:image/png;base64,".Length..]));
        }

        // Any size and format: a 300×200 JPEG is centre-cropped and resized like training data.
        using var photo = new SKBitmap(300, 200);
        photo.Erase(SKColors.OrangeRed);
        using var jpeg = SKImage.FromBitmap(photo).Encode(SKEncodedImageFormat.Jpeg, 90);
        using var ok = await fx.Http.PostAsync("api/runs/0/encode", new ByteArrayContent(jpeg.ToArray()));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Interpolation_is_a_strip_from_one_code_to_the_other()
    {
        var a = Filled(8, -1.5f);
        var b = Filled(8, 1.5f);
        b[0] = -1.5f;
        async Task<byte[]> Strip(string mode, int steps)
        {
            using var response = await fx.Http.PostAsync("api/runs/0/interpolate", Json(new { a, b, steps, mode }));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            return await response.Content.ReadAsByteArrayAsync();
        }
        var linear = await Strip("linear", 5);
        using var strip = Png(linear);
        Assert.Equal((5 * 33 + 1, 34), (strip.Width, strip.Height));   // 32 px tiles, 1 px apart and around

        // The first and last tiles are the decodes of a and b.
        using var first = Png(await Decode(0, a));
        using var last = Png(await Decode(0, b));
        for (int y = 0; y < 32; y += 5)
            for (int x = 0; x < 32; x += 5)
            {
                Assert.Equal(first.GetPixel(x, y), strip.GetPixel(1 + x, 1 + y));
                Assert.Equal(last.GetPixel(x, y), strip.GetPixel(1 + 4 * 33 + x, 1 + y));
            }
        Assert.NotEqual(linear, await Strip("slerp", 5));   // the arc leaves the straight line between the ends
    }

    public static TheoryData<string, string, string?, string?, int, string> BadRequests => new()
    {
        { "POST", "api/runs/0/decode", "{\"z\":[0,0]}", "application/json", 400, "8 numbers" },
        { "POST", "api/runs/0/decode", "{\"z\":[0,0,0,0,0,0,0,\"NaN\"]}", "application/json", 400, "finite" },
        { "POST", "api/runs/0/decode", "{\"z\":[0,0,0,0,0,0,0,1e9]}", "application/json", 400, "magnitude" },
        { "POST", "api/runs/0/decode", "{\"z\":", "application/json", 400, "JSON" },
        { "POST", "api/runs/0/decode", "z=1", "application/x-www-form-urlencoded", 415, "JSON" },
        { "POST", "api/runs/9/decode", "{\"z\":[]}", "application/json", 404, "No run '9'" },
        { "POST", "api/runs/x/sample", "{}", "application/json", 404, "No run 'x'" },
        { "POST", "api/runs/0/sample", "{\"temperature\":-1}", "application/json", 400, "temperature" },
        { "POST", "api/runs/0/interpolate", "{\"a\":[0,0,0,0,0,0,0,0],\"b\":[0,0,0,0,0,0,0,0],\"mode\":\"cubic\"}", "application/json", 400, "linear or slerp" },
        { "POST", "api/runs/0/interpolate", "{\"a\":[0,0,0,0,0,0,0,0],\"b\":[0,0,0,0,0,0,0,0],\"steps\":1000}", "application/json", 400, "steps" },
        { "POST", "api/runs/0/encode", "", "image/png", 400, "empty" },
        { "POST", "api/runs/0/encode", "hello", "image/png", 400, "not an image" },
        { "GET", "api/runs/0/examples/99", null, null, 404, "example images" },
        { "GET", "api/runs/0/decode", null, null, 405, "not allowed" },
        { "GET", "nothing/here", null, null, 404, "No such" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_requests_get_a_4xx_with_a_json_message_and_no_stack_trace(string method, string path, string? body, string? type, int status, string hint)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, type!);
        if (body is not null && type is not null) request.Content!.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(type);
        await AssertError(await fx.Http.SendAsync(request), status, hint);
    }

    private static async Task AssertError(HttpResponseMessage response, int status, string hint)
    {
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            string error = JsonDocument.Parse(text).RootElement.GetProperty("error").GetString()!;
            Assert.Contains(hint, error);
            Assert.DoesNotMatch(new Regex(@"\bat [\w.]+\(|\.cs:line"), text);
        }
    }

    [Fact]
    public async Task A_decompression_bomb_is_refused_from_its_header_and_a_large_upload_by_its_size()
    {
        // 48 KB of PNG that would inflate to 20,000² pixels (1.6 GB as RGBA).
        var bomb = PngOfZeros(20000, 20000);
        Assert.InRange(bomb.Length, 1, fx.Limits.MaxBytes);
        long before = Environment.WorkingSet;
        await AssertError(await fx.Http.PostAsync("api/runs/0/encode", new ByteArrayContent(bomb)), 400, "20000×20000");
        Assert.True(Environment.WorkingSet - before < 500L * 1024 * 1024, "the bomb was inflated");

        // Just over the side limit (1024 in this fixture), tiny on disk: refused the same way.
        await AssertError(await fx.Http.PostAsync("api/runs/0/encode", new ByteArrayContent(PngOfZeros(1025, 8))), 400, "1025×8");

        var big = new byte[fx.Limits.MaxBytes + 1];
        await AssertError(await fx.Http.PostAsync("api/runs/0/encode", new ByteArrayContent(big)), 413, "limit");
    }

    /// <summary>A valid 1-bit grey PNG of zeros: a few bytes per row once deflated, whatever its declared size.</summary>
    internal static byte[] PngOfZeros(int width, int height)
    {
        static byte[] Chunk(string type, byte[] data)
        {
            var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            var length = BitConverter.GetBytes(data.Length).Reverse();
            var crc = BitConverter.GetBytes(Crc32(typed)).Reverse();
            return length.Concat(typed).Concat(crc).ToArray();
        }
        var header = new byte[13];
        BitConverter.GetBytes(width).Reverse().ToArray().CopyTo(header, 0);
        BitConverter.GetBytes(height).Reverse().ToArray().CopyTo(header, 4);
        header[8] = 1;   // bit depth 1, colour type 0 (grey), deflate, adaptive filter, no interlace
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var row = new byte[1 + (width + 7) / 8];
            for (int y = 0; y < height; y++) z.Write(row);
        }
        static uint Crc32(byte[] bytes)   // PNG's CRC-32 (ISO 3309), bit by bit
        {
            uint c = 0xFFFFFFFF;
            foreach (byte b in bytes)
            {
                c ^= b;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }
            return ~c;
        }
        return [.. new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, .. Chunk("IHDR", header), .. Chunk("IDAT", raw.ToArray()), .. Chunk("IEND", [])];
    }

    [Fact]
    public async Task Concurrent_requests_get_the_answers_serial_ones_get_and_leave_no_tensors()
    {
        var codes = Enumerable.Range(0, 8).Select(i => Enumerable.Range(0, 8).Select(d => (float)Math.Sin(i * 8 + d) * 2).ToArray()).ToArray();
        var serial = new Dictionary<(int, int), byte[]>();
        foreach (int run in new[] { 0, 1 })
            for (int i = 0; i < codes.Length; i++) serial[(run, i)] = await Decode(run, codes[i]);
        long leakedBefore = ServedModel.LeakedTensors;

        var work = Enumerable.Range(0, 96).Select(async k =>
        {
            int run = k % 2, i = k / 2 % codes.Length;
            return (run, i, png: await Decode(run, codes[i]));
        });
        foreach (var (run, i, png) in await Task.WhenAll(work))
            Assert.Equal(serial[(run, i)], png);
        Assert.Equal(leakedBefore, ServedModel.LeakedTensors);
        using var stats = JsonDocument.Parse(await fx.Http.GetStringAsync("api/stats"));
        Assert.Equal(0, stats.RootElement.GetProperty("leaked_tensors").GetInt64());
    }

    [Fact]
    public async Task The_page_is_self_contained_and_the_server_listens_on_loopback_only()
    {
        Assert.Equal("127.0.0.1", fx.Host.Address.Host);
        using var response = await fx.Http.GetAsync("/");
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        string html = await response.Content.ReadAsStringAsync();
        Assert.DoesNotMatch(new Regex(@"<(script|img|link)[^>]+(src|href)\s*=\s*""?(https?:)?//", RegexOptions.IgnoreCase), html);
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task A_run_whose_images_are_gone_is_served_unranked_with_a_note()
    {
        using var dir = new TempDir();
        string images = dir["faces"];
        Directory.CreateDirectory(images);
        for (int i = 0; i < 40; i++)
        {
            using var bitmap = new SKBitmap(32, 32);
            bitmap.Erase(new SKColor((byte)(i * 6), 90, (byte)(255 - i * 6)));
            using var png = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(images, $"{i}.png"), png.ToArray());
        }
        var (exit, output, error) = Tests.Cli.CliRunner.Run("train", "--data", images, "--widths", "8,16", "--latent", "4", "--epochs", "1", "--max-steps", "2",
            "--batch-size", "16", "--threads", "1", "--name", "gone", "--runs-dir", dir["runs"], "--no-cache");
        Assert.True(exit == 0, output + error);
        Directory.Delete(images, recursive: true);

        using var model = ServedModel.Load(dir["runs/gone"]);
        Assert.Contains("not available", model.RankingNote);
        Assert.Equal([0, 1, 2, 3], model.Ranked.Select(d => d.Index));
        Assert.Empty(model.Examples);
        using var png2 = Png(await model.DecodeAsync(Filled(4, 0)));
        Assert.Equal(32, png2.Width);
    }

    [Fact]
    public async Task A_second_server_on_a_taken_port_is_bad_input()
    {
        var taken = new ServeOptions { Port = fx.Host.Address.Port };
        var e = await Assert.ThrowsAsync<BadInputException>(() => ServeHost.StartAsync(fx.Models, taken, TextWriter.Null));
        Assert.Contains($"127.0.0.1:{taken.Port}", e.Message);
        Assert.Contains("--port", e.Message);
    }

    [Fact]
    public async Task Runs_with_different_latent_sizes_are_served_each_with_its_own_code()
    {
        var models = new[] { ServedModel.Load(fx.Vae8), ServedModel.Load(fx.Vae4) };
        try
        {
            await using var host = await ServeHost.StartAsync(models, new ServeOptions { Port = 0 }, TextWriter.Null);
            using var http = new HttpClient { BaseAddress = host.Address };
            using var doc = JsonDocument.Parse(await http.GetStringAsync("api/runs"));
            Assert.False(doc.RootElement.GetProperty("shared_latent").GetBoolean());
            using var decoded = await http.PostAsync("api/runs/1/decode", Json(new { z = Filled(4, 0.5f) }));
            Assert.Equal(HttpStatusCode.OK, decoded.StatusCode);
            await AssertError(await http.PostAsync("api/runs/1/decode", Json(new { z = Filled(8, 0.5f) })), 400, "4 numbers");
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }
}
