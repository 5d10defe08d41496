using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VaeKit.Tracking.Wandb;

/// <summary>
/// W&amp;B's "extended JSON" for history and summary lines: ordinary JSON, except that NaN, Infinity and -Infinity
/// are bare tokens (as the official core writes them), not strings. System.Text.Json would quote them, so doubles
/// are written here. Values: double, float, int, long, bool, string, <see cref="JsonNode"/>, or a nested
/// <see cref="IEnumerable{T}"/> of string/object pairs.
/// </summary>
internal static class WandbJson
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Line(IEnumerable<KeyValuePair<string, object?>> values)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, Options))
            WriteObject(writer, values);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The UpsertBucket <c>config</c> variable: a JSON string of <c>{key: {"value": v}}</c> per top-level key.</summary>
    public static string ConfigString(JsonObject config)
    {
        var wrapped = new JsonObject();
        foreach (var (key, value) in config)
            wrapped[key] = new JsonObject { ["value"] = value?.DeepClone() };
        return wrapped.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private static void WriteObject(Utf8JsonWriter writer, IEnumerable<KeyValuePair<string, object?>> values)
    {
        writer.WriteStartObject();
        foreach (var (key, value) in values)
        {
            writer.WritePropertyName(key);
            WriteValue(writer, value);
        }
        writer.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case double d: WriteDouble(writer, d); break;
            case float f: WriteDouble(writer, f); break;
            case int i: writer.WriteNumberValue(i); break;
            case long l: writer.WriteNumberValue(l); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case string s: writer.WriteStringValue(s); break;
            case JsonNode node: node.WriteTo(writer); break;
            case IEnumerable<KeyValuePair<string, object?>> nested: WriteObject(writer, nested); break;
            default: throw new ArgumentException($"W&B rows take numbers, strings, booleans and objects, not {value.GetType().Name}.");
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double d)
    {
        if (double.IsFinite(d)) writer.WriteNumberValue(d);
        else writer.WriteRawValue(double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity", skipInputValidation: true);
    }
}
