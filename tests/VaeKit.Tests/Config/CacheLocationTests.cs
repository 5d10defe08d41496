using System.Text.Json;
using VaeKit.Config;

namespace VaeKit.Tests.Config;

/// <summary>The cache setting is typed in code and spelled in config.json as runs have always stored it.</summary>
public class CacheLocationTests
{
    [Theory]
    [InlineData("""{"source":"synthetic"}""", null)]                                   // absent: the default user cache
    [InlineData("""{"source":"synthetic","cache_directory":""}""", "off")]             // "": off (a --no-cache run)
    [InlineData("""{"source":"synthetic","cache_directory":"/data/vk"}""", "/data/vk")]
    public void A_stored_run_reads_back_its_cache_setting_and_writes_it_the_same_way(string json, string? expected)
    {
        var data = JsonSerializer.Deserialize<DataConfig>(json, Json.Compact)!;
        Assert.Equal(expected, data.CacheDirectory?.ToString());
        Assert.Equal(json, JsonSerializer.Serialize(data with { }, Json.Compact).Replace(""","validation_fraction":0.05,"flip":false""", ""));
        string? resolved = new VaeKit.Data.DataOptions { Source = VaeKit.Data.DataSpec.Parse("synthetic"), CacheDirectory = data.CacheDirectory }
            .ResolveCacheDirectory();
        if (expected == "off") Assert.Null(resolved);
        else if (expected is not null) Assert.Equal(expected, resolved);
        else Assert.NotNull(resolved);   // $VAEKIT_CACHE, $XDG_CACHE_HOME/vaekit or ~/.cache/vaekit
    }
}
