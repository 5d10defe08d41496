using System.Text.RegularExpressions;
using VaeKit.Cli;
using VaeKit.Cli.Commands;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Docs;

/// <summary>docs/cli.md is what the command definitions generate, and names every environment variable the code reads.</summary>
public partial class CliReferenceTests
{
    private static string Generated() => DocsCommand.CliReference(VaeCli.CreateRoot(Terminal.Plain(new StringWriter())));

    [Fact]
    public void Docs_cli_md_is_what_the_command_definitions_generate()
    {
        string path = Path.Combine(Requirements.RepositoryRoot, "docs", "cli.md");
        string expected = Generated();
        string? actual = File.Exists(path) ? File.ReadAllText(path) : null;
        if (actual == expected) return;
        string where = actual is null ? "is missing" : FirstDifference(actual, expected);
        Assert.Fail($"docs/cli.md {where}. Regenerate it from the repository root with:\n  {DocsCommand.Regenerate}");
    }

    [Fact]
    public void Vae_docs_cli_prints_the_same_reference_and_writes_it_with_out()
    {
        var (exit, output, error) = CliRunner.Run("docs", "cli");
        Assert.True(exit == 0, error);
        Assert.Equal(Generated(), output);

        using var dir = new TempDir();
        var (written, _, writeError) = CliRunner.Run("docs", "cli", "--out", dir["cli.md"]);
        Assert.True(written == 0, writeError);
        Assert.Equal(Generated(), File.ReadAllText(dir["cli.md"]));

        var (blocked, _, blockedError) = CliRunner.Run("docs", "cli", "--out", dir["no/such/dir/cli.md"]);
        Assert.Equal(ExitCodes.BadInput, blocked);
        Assert.Contains("Cannot write", blockedError);
    }

    [Fact]
    public void The_reference_covers_every_command_and_option_and_the_docs_command_stays_hidden()
    {
        string text = Generated();
        var root = VaeCli.CreateRoot(Terminal.Plain(new StringWriter()));
        foreach (var command in root.Subcommands.Where(c => !c.Hidden))
        {
            Assert.Contains($"\n## vae {command.Name}\n", text);
            foreach (var option in command.Options.Where(o => !o.Hidden && o.Name != "--help"))
                Assert.Contains($"| `{option.Name}`", text);
        }
        Assert.DoesNotContain("## vae docs", text);
        Assert.DoesNotContain(CliRunner.Run("--help").Out.Split('\n'), l => l.TrimStart().StartsWith("docs ", StringComparison.Ordinal));
    }

    /// <summary>Every variable the sources read by name (GetEnvironmentVariable("X"), Env("X")) is in the reference's table.</summary>
    [Fact]
    public void Every_environment_variable_the_code_reads_is_documented()
    {
        var read = Directory.EnumerateFiles(Path.Combine(Requirements.RepositoryRoot, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(f => EnvironmentRead().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value))
            .ToHashSet();
        Assert.Contains("VAEKIT_LIBTORCH", read);   // the scan itself works
        var documented = DocsCommand.Environment.Select(e => e.Name).ToHashSet();
        Assert.Empty(read.Except(documented).Order());
        Assert.Empty(documented.Except(read).Order());
    }

    [GeneratedRegex(@"(?:GetEnvironmentVariable|\bEnv|\benvironment)\(""([A-Z][A-Z0-9_]+)""")]
    private static partial Regex EnvironmentRead();

    private static string FirstDifference(string actual, string expected)
    {
        var a = actual.Split('\n');
        var e = expected.Split('\n');
        for (int i = 0; i < Math.Max(a.Length, e.Length); i++)
        {
            string? x = i < a.Length ? a[i] : null, y = i < e.Length ? e[i] : null;
            if (x != y)
                return $"differs from the code at line {i + 1}:\n  file: {x ?? "(end of file)"}\n  code: {y ?? "(end of file)"}";
        }
        return "differs from the code";
    }
}

public class VersionTests
{
    [Fact]
    public void Vae_version_prints_the_version_the_commit_libtorch_and_the_device()
    {
        var (exit, output, error) = CliRunner.Run("--version");
        Assert.True(exit == 0, error);
        var lines = output.TrimEnd().Split('\n');
        Assert.Matches(@"^VaeKit \d+\.\d+\.\d+", lines[0]);
        Assert.Matches(@"^commit ([0-9a-f]{40}|unknown)", lines[1]);
        Assert.Matches(@"^TorchSharp 0\.107\.\d+, libtorch \d+\.\d+", lines[2]);
        Assert.StartsWith("libtorch loaded from /", lines[3]);
        Assert.Matches(@"^device \(--device auto\): (cpu|cuda)", lines[4]);
    }
}
