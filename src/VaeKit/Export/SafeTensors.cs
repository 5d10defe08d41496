using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace VaeKit.Export;

/// <summary>One tensor's entry in a safetensors header: its dtype name, shape and byte range in the data section.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Size of the tensor's data, bytes.</summary>
    public long ByteLength => End - Begin;
}

/// <summary>The parsed header of a safetensors file.</summary>
/// <param name="Tensors">In file order (ascending offsets).</param>
/// <param name="Metadata">The <c>__metadata__</c> string map (empty when absent).</param>
/// <param name="DataStart">Absolute file offset of the data section (8 + header length).</param>
public sealed record SafeTensorsHeader(IReadOnlyList<SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata, long DataStart)
{
    /// <summary>The tensor called <paramref name="name"/>, or null when the file has none.</summary>
    public SafeTensorInfo? this[string name] => Tensors.FirstOrDefault(t => t.Name == name);
}

/// <summary>
/// The safetensors file format (Hugging Face), written and read here without a dependency. A file is: an unsigned
/// 64-bit little-endian header length N; N bytes of UTF-8 JSON mapping each tensor name to
/// <c>{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}</c>, plus an optional <c>__metadata__</c> object of
/// strings (padded with spaces to a multiple of 8); then the tensors' raw little-endian, row-major bytes, offsets
/// counted from the end of the header. PyTorch reads it with the <c>safetensors</c> package, or with
/// <c>struct</c> + <c>json</c> + <c>torch.frombuffer</c> (bench/check_export.py).
/// </summary>
/// <remarks>
/// <see cref="Save"/> and <see cref="Load(nn.Module, string)"/> name a VaeKit model's tensors as the plain-PyTorch twin of
/// <c>bench/pytorch_bench.py</c> does (<see cref="PyTorchNames"/>), so <c>model.load_state_dict</c> takes the file
/// there with strict checking.
/// </remarks>
public static class SafeTensors
{
    private const string MetadataKey = "__metadata__";
    private const long MaxHeaderBytes = 100 << 20;   // the reference implementation's limit

    private static readonly Dictionary<ScalarType, string> DTypeNames = new()
    {
        [ScalarType.Float64] = "F64", [ScalarType.Float32] = "F32", [ScalarType.Float16] = "F16", [ScalarType.BFloat16] = "BF16",
        [ScalarType.Int64] = "I64", [ScalarType.Int32] = "I32", [ScalarType.Int16] = "I16", [ScalarType.Int8] = "I8",
        [ScalarType.Byte] = "U8", [ScalarType.Bool] = "BOOL",
    };
    private static readonly Dictionary<string, ScalarType> DTypes = DTypeNames.ToDictionary(p => p.Value, p => p.Key);

    /// <summary>The safetensors dtype name of a TorchSharp dtype ("F32", "I64", …).</summary>
    public static string DTypeName(ScalarType type) =>
        DTypeNames.TryGetValue(type, out var name) ? name : throw new NotSupportedException($"safetensors has no dtype for {type}.");

    /// <summary>The TorchSharp dtype of a safetensors dtype name.</summary>
    public static ScalarType DType(string name) =>
        DTypes.TryGetValue(name, out var type) ? type : throw new NotSupportedException($"dtype {name} is not supported here.");

    /// <summary>
    /// Writes <paramref name="tensors"/> (any device; copied to the CPU one at a time) in this order, atomically
    /// (a temporary file renamed over <paramref name="path"/>).
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors is little-endian; this machine is not.");
        var duplicate = tensors.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"Tensor name '{duplicate.Key}' appears twice.", nameof(tensors));

        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                long bytes = tensor.numel() * tensor.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", DTypeName(tensor.dtype));
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        while (header.Length % 8 != 0) header.WriteByte((byte)' ');   // data starts 8-byte aligned

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            header.Position = 0;
            header.CopyTo(stream);
            foreach (var (_, tensor) in tensors)
            {
                using var scope = NewDisposeScope();
                var cpu = tensor.detach().cpu().contiguous();
                stream.Write(cpu.bytes);   // native memory, little-endian, row-major
            }
        });
    }

    /// <summary>Parses and checks the header (cheap: no tensor data is read).</summary>
    /// <exception cref="BadInputException">Missing, unreadable, or not a well-formed safetensors file.</exception>
    public static SafeTensorsHeader ReadHeader(string path)
    {
        using var stream = OpenRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Reads every tensor onto the CPU; the caller disposes them.</summary>
    public static Dictionary<string, Tensor> ReadAll(string path)
    {
        using var stream = OpenRead(path);
        var header = ReadHeader(stream, path);
        var result = new Dictionary<string, Tensor>();
        foreach (var info in header.Tensors)
            result[info.Name] = ReadTensor(stream, header, info, path);
        return result;
    }

    /// <summary>
    /// Writes a model's state (parameters and persistent buffers, BatchNorm running statistics included) under the
    /// twin's names (<see cref="PyTorchNames"/>), in the model's state_dict order.
    /// </summary>
    public static void Save(nn.Module model, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var state = model.state_dict();
        var names = PyTorchNames.Map(state.Keys);
        Write(path, state.Select(p => (names[p.Key], p.Value)).ToList(), metadata);
    }

    /// <summary>
    /// Loads a file written by <see cref="Save"/> (or by PyTorch's twin) into <paramref name="model"/>, in place and on
    /// the model's device. Strict: every tensor of the model must be in the file with the same shape, and the file
    /// may hold nothing else; otherwise nothing is changed and the message names the missing, unexpected and
    /// mismatched tensors.
    /// </summary>
    /// <exception cref="BadInputException">The file does not fit the model, or is not a safetensors file.</exception>
    public static void Load(nn.Module model, string path)
    {
        using var stream = OpenRead(path);
        Load(model, stream, path);
    }

    /// <summary>As <see cref="Load(nn.Module, string)"/>, from a seekable stream (an embedded resource, say);
    /// <paramref name="path"/> names it in messages.</summary>
    /// <exception cref="BadInputException">The content does not fit the model, or is not safetensors.</exception>
    public static void Load(nn.Module model, Stream stream, string path)
    {
        var header = ReadHeader(stream, path);
        var state = model.state_dict();
        var names = PyTorchNames.Map(state.Keys);
        var inFile = header.Tensors.ToDictionary(t => t.Name);

        var missing = state.Keys.Where(k => !inFile.ContainsKey(names[k])).Select(k => names[k]).ToList();
        var expected = names.Values.ToHashSet();
        var unexpected = header.Tensors.Where(t => !expected.Contains(t.Name)).Select(t => t.Name).ToList();
        var mismatched = new List<string>();
        foreach (var (name, tensor) in state)
        {
            if (!inFile.TryGetValue(names[name], out var info)) continue;
            var type = DType(info.DType);
            if (!info.Shape.SequenceEqual(tensor.shape))
                mismatched.Add($"{info.Name} is {Shape(info.Shape)} in the file, {Shape(tensor.shape)} in the model");
            else if (IsFloat(type) != IsFloat(tensor.dtype))
                mismatched.Add($"{info.Name} is {info.DType} in the file, {DTypeName(tensor.dtype)} in the model");
        }
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {List(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {List(unexpected)}");
            if (mismatched.Count > 0) parts.Add($"mismatched: {List(mismatched)}");
            throw new BadInputException(
                $"{path} does not fit this model ({string.Join("; ", parts)}). The file must come from a model of the same " +
                "architecture (preset, widths, blocks, latent, image channels); see docs/export.md for the tensor names.");
        }

        using var noGrad = no_grad();
        foreach (var (name, tensor) in state)
        {
            using var scope = NewDisposeScope();
            var loaded = ReadTensor(stream, header, inFile[names[name]], path);
            tensor.copy_(loaded);   // converts dtype and device
        }
    }

    private static bool IsFloat(ScalarType type) => type is ScalarType.Float64 or ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;

    private static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    private static string List(List<string> items) =>
        string.Join(", ", items.Take(6)) + (items.Count > 6 ? $" and {items.Count - 6} more" : "");

    private static FileStream OpenRead(string path)
    {
        try
        {
            return File.OpenRead(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BadInputException($"No safetensors file at {path}.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot read {path}: {e.Message}", e);
        }
    }

    private static BadInputException Malformed(string path, string why, Exception? inner = null) =>
        new($"{path} is not a valid safetensors file: {why}.", inner);

    /// <summary>Parses and checks the header of a seekable stream positioned at its start; <paramref name="path"/> names it in messages.</summary>
    public static SafeTensorsHeader ReadHeader(Stream stream, string path)
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Length < 8) throw Malformed(path, "shorter than 8 bytes");
        stream.ReadExactly(lengthBytes);
        ulong length = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (length < 2 || length > MaxHeaderBytes || (long)length > stream.Length - 8)
            throw Malformed(path, $"implausible header length {length}");
        var headerBytes = new byte[length];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)length;
        long dataLength = stream.Length - dataStart;

        var tensors = new List<SafeTensorInfo>();
        var metadata = new Dictionary<string, string>();
        try
        {
            using var doc = JsonDocument.Parse(headerBytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Malformed(path, "the header is not a JSON object");
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == MetadataKey)
                {
                    foreach (var m in entry.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.GetString() ?? "";
                    continue;
                }
                var v = entry.Value;
                string dtype = v.GetProperty("dtype").GetString() ?? "";
                if (!DTypes.ContainsKey(dtype)) throw Malformed(path, $"tensor {entry.Name} has unsupported dtype '{dtype}'");
                var shape = v.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = v.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                if (shape.Any(d => d < 0) || offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
                    throw Malformed(path, $"tensor {entry.Name} has a bad shape or byte range");
                if (offsets[1] > dataLength)
                    throw Malformed(path, $"tensor {entry.Name} ends past the end of the file (truncated?)");
                long bytes = shape.Aggregate(1L, (a, d) => a * d) * ElementSize(DTypes[dtype]);
                if (offsets[1] - offsets[0] != bytes)
                    throw Malformed(path, $"tensor {entry.Name} holds {offsets[1] - offsets[0]} bytes, its shape needs {bytes}");
                tensors.Add(new SafeTensorInfo(entry.Name, dtype, shape, offsets[0], offsets[1]));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw Malformed(path, $"the header is malformed ({e.Message})", e);
        }
        tensors.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long expectedBegin = 0;
        foreach (var t in tensors)
        {
            if (t.Begin != expectedBegin) throw Malformed(path, $"tensor {t.Name}'s bytes overlap another's or leave a gap");
            expectedBegin = t.End;
        }
        if (expectedBegin != dataLength) throw Malformed(path, $"the data section has {dataLength} bytes, the tensors {expectedBegin} (truncated?)");
        return new SafeTensorsHeader(tensors, metadata, dataStart);
    }

    private static long ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    private static Tensor ReadTensor(Stream stream, SafeTensorsHeader header, SafeTensorInfo info, string path)
    {
        var bytes = new byte[info.ByteLength];
        stream.Position = header.DataStart + info.Begin;
        try
        {
            stream.ReadExactly(bytes);
        }
        catch (EndOfStreamException e)
        {
            throw Malformed(path, $"tensor {info.Name} is cut short", e);
        }
        var tensor = empty(info.Shape, DType(info.DType));
        tensor.bytes = bytes;
        return tensor;
    }
}
