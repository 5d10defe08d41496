using System.Text.RegularExpressions;

namespace VaeKit.Tests.Docs;

/// <summary>
/// Every relative link and image in README.md and docs/*.md resolves: the file exists, and a #anchor names a heading of
/// the target page (GitHub's anchors). Web links are not fetched.
/// </summary>
public partial class LinkTests
{
    public static TheoryData<string> Pages()
    {
        var data = new TheoryData<string>();
        foreach (var page in MarkdownPages()) data.Add(Path.GetRelativePath(Requirements.RepositoryRoot, page));
        return data;
    }

    private static IEnumerable<string> MarkdownPages() =>
        new[] { Path.Combine(Requirements.RepositoryRoot, "README.md"), Path.Combine(Requirements.RepositoryRoot, "BENCHMARKS.md") }
            .Concat(Directory.EnumerateFiles(Path.Combine(Requirements.RepositoryRoot, "docs"), "*.md", SearchOption.AllDirectories))
            .Where(File.Exists).Order(StringComparer.Ordinal);

    [Theory]
    [MemberData(nameof(Pages))]
    public void Every_relative_link_and_image_resolves(string page)
    {
        string file = Path.Combine(Requirements.RepositoryRoot, page);
        var broken = new List<string>();
        foreach (var (line, target) in Links(File.ReadAllText(file)))
        {
            if (Uri.TryCreate(target, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" or "mailto") continue;
            string path = target, anchor = "";
            int hash = target.IndexOf('#');
            if (hash >= 0) (path, anchor) = (target[..hash], target[(hash + 1)..]);
            string resolved = path.Length == 0 ? file : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, Uri.UnescapeDataString(path)));
            if (!File.Exists(resolved) && !Directory.Exists(resolved))
                broken.Add($"{page}:{line}: {target} (no file {Path.GetRelativePath(Requirements.RepositoryRoot, resolved)})");
            else if (anchor.Length > 0 && resolved.EndsWith(".md", StringComparison.Ordinal) && !Anchors(File.ReadAllText(resolved)).Contains(anchor))
                broken.Add($"{page}:{line}: {target} (no heading with anchor #{anchor} in {Path.GetRelativePath(Requirements.RepositoryRoot, resolved)})");
        }
        Assert.True(broken.Count == 0, "broken links:\n" + string.Join("\n", broken));
    }

    [Fact]
    public void The_checker_finds_links_and_anchors_the_way_GitHub_renders_them()
    {
        const string text = "# Tracking (W&B, TensorBoard)\n## σ-VAE: a calibrated decoder\n## Tests\n## Tests\n" +
                            "see [a](docs/a.md#x) and ![p](docs/p.png), `[not](code.md)`\n```\n[not](fenced.md)\n```\n<img src=\"docs/i.png\">\n";
        Assert.Equal(["tracking-wb-tensorboard", "σ-vae-a-calibrated-decoder", "tests", "tests-1"], Anchors(text));
        Assert.Equal(["docs/a.md#x", "docs/p.png", "docs/i.png"], Links(text).Select(l => l.Target));
    }

    /// <summary>Link and image targets outside code, with their line numbers.</summary>
    internal static IEnumerable<(int Line, string Target)> Links(string markdown)
    {
        bool fenced = false;
        var lines = markdown.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal)) { fenced = !fenced; continue; }
            if (fenced) continue;
            string text = CodeSpan().Replace(lines[i], "");
            foreach (Match m in MarkdownLink().Matches(text)) yield return (i + 1, m.Groups[1].Value);
            foreach (Match m in HtmlSource().Matches(text)) yield return (i + 1, m.Groups[1].Value);
        }
    }

    /// <summary>GitHub's heading anchors: lower case, punctuation dropped (not - or _), spaces to -, repeats numbered.</summary>
    internal static List<string> Anchors(string markdown)
    {
        var anchors = new List<string>();
        var seen = new Dictionary<string, int>();
        bool fenced = false;
        foreach (var line in markdown.Split('\n'))
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal)) { fenced = !fenced; continue; }
            if (fenced) continue;
            var heading = Heading().Match(line);
            if (!heading.Success) continue;
            string title = LinkText().Replace(heading.Groups[1].Value.Trim(), "$1");
            string slug = new string(title.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_').ToArray()).Replace(' ', '-');
            int n = seen.GetValueOrDefault(slug);
            seen[slug] = n + 1;
            anchors.Add(n == 0 ? slug : $"{slug}-{n}");
        }
        return anchors;
    }

    [GeneratedRegex(@"!?\[(?:[^\]]|\][^(])*?\]\(\s*<?([^)\s>]+)>?(?:\s+""[^""]*"")?\s*\)")]
    private static partial Regex MarkdownLink();

    [GeneratedRegex(@"<img[^>]*\ssrc=""([^""]+)""")]
    private static partial Regex HtmlSource();

    [GeneratedRegex(@"`[^`]*`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"^#{1,6}\s+(.+?)\s*#*\s*$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"\[([^\]]*)\]\([^)]*\)")]
    private static partial Regex LinkText();
}
