using System.Globalization;

namespace VaeKit.Data;

/// <summary>
/// Where training images come from, as written on the command line (<c>--data</c>). Parse with <see cref="Parse"/>;
/// paths are stored absolute so <see cref="Describe"/> is unambiguous in logs and run records.
/// </summary>
public abstract record DataSpec
{
    /// <summary>Number of synthetic faces when none is given.</summary>
    public const int DefaultSyntheticCount = 8192;

    /// <summary>Where the Debian package <c>dataset-fashion-mnist</c> installs its files.</summary>
    public const string DefaultFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    private DataSpec() { }   // closed hierarchy: the loader switches over exactly these four

    /// <summary>Procedurally drawn faces (<see cref="SyntheticFaces"/>): <c>synthetic</c> or <c>synthetic:N</c>.</summary>
    public sealed record Synthetic(int Count) : DataSpec
    {
        /// <inheritdoc/>
        public override string Describe() => $"synthetic faces ({Count})";
    }

    /// <summary>Fashion-MNIST IDX files in a directory: <c>fashion-mnist</c> or <c>fashion-mnist:PATH</c>.</summary>
    public sealed record FashionMnist(string Directory) : DataSpec
    {
        /// <inheritdoc/>
        public override string Describe() => $"fashion-mnist {Directory}";
    }

    /// <summary>A directory searched recursively for images.</summary>
    public sealed record Folder(string Path) : DataSpec
    {
        /// <inheritdoc/>
        public override string Describe() => $"folder {Path}";
    }

    /// <summary>A .zip archive whose image entries are read in place (never extracted).</summary>
    public sealed record Zip(string Path) : DataSpec
    {
        /// <inheritdoc/>
        public override string Describe() => $"zip {Path}";
    }

    /// <summary>One line for logs, e.g. <c>synthetic faces (8192)</c> or <c>zip /x/archive.zip</c>.</summary>
    public abstract string Describe();

    /// <summary>The <c>--data</c> text that parses back to this spec from any directory (paths absolute); stored in config.json.</summary>
    public string ToArgument() => this switch
    {
        Synthetic s => $"synthetic:{s.Count}",
        FashionMnist f => $"fashion-mnist:{f.Directory}",
        Folder f => f.Path,
        Zip z => z.Path,
        _ => throw new InvalidOperationException(),
    };

    /// <summary>
    /// Parses <c>synthetic[:N]</c>, <c>fashion-mnist[:PATH]</c> (keywords case-insensitive), an existing directory or
    /// an existing <c>.zip</c> file. Null or blank means <c>synthetic</c>. A leading <c>~/</c> is expanded. A folder
    /// literally named like a keyword can be given as <c>./synthetic</c>.
    /// </summary>
    /// <exception cref="BadInputException">The text names nothing usable; the message says what to write instead.</exception>
    public static DataSpec Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return new Synthetic(DefaultSyntheticCount);
        text = text.Trim();

        if (TryKeyword(text, "synthetic", out var countText))
        {
            if (countText is null) return new Synthetic(DefaultSyntheticCount);
            if (int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out int count) && count > 0)
                return new Synthetic(count);
            throw new BadInputException($"'{text}' is not a valid synthetic data set: write synthetic:N with N a positive whole number, e.g. synthetic:{DefaultSyntheticCount}.");
        }
        if (TryKeyword(text, "fashion-mnist", out var dir))
        {
            if (dir is null) return new FashionMnist(DefaultFashionMnistDirectory);
            if (dir.Length == 0) throw new BadInputException("'fashion-mnist:' needs a directory after the colon, e.g. fashion-mnist:/data/fashion-mnist.");
            return new FashionMnist(FullPath(dir));
        }

        string path = FullPath(text);
        if (Directory.Exists(path)) return new Folder(path);
        if (File.Exists(path))
        {
            if (IsZipName(path)) return new Zip(path);
            throw new BadInputException($"{path} is neither a folder nor a .zip file: pass a folder of images, a .zip of images, synthetic or fashion-mnist.");
        }
        throw new BadInputException($"{path} does not exist: pass an existing folder of images, a .zip of images, synthetic or fashion-mnist.");
    }

    internal static bool IsZipName(string path) => path.EndsWith(".zip", StringComparison.OrdinalIgnoreCase);

    /// <summary>Expands <c>~/</c> and makes the path absolute against the current directory.</summary>
    internal static string FullPath(string path)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal))
            path = System.IO.Path.Join(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[1..].TrimStart('/'));
        return System.IO.Path.GetFullPath(path);
    }

    /// <summary>True when <paramref name="text"/> is <paramref name="keyword"/> alone (argument null) or keyword:argument.</summary>
    private static bool TryKeyword(string text, string keyword, out string? argument)
    {
        argument = null;
        if (!text.StartsWith(keyword, StringComparison.OrdinalIgnoreCase)) return false;
        if (text.Length == keyword.Length) return true;
        if (text[keyword.Length] != ':') return false;
        argument = text[(keyword.Length + 1)..];
        return true;
    }
}
