using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Spectre.Console;

namespace VaeKit.Cli.Commands;

/// <summary>
/// <c>vae docs cli [--out FILE]</c> (hidden): writes docs/cli.md, the command reference, from the command definitions
/// themselves, so it cannot drift from them (a test compares the file with what the code generates).
/// </summary>
internal static partial class DocsCommand
{
    public const string Regenerate = "dotnet run --project src/VaeKit.Cli -- docs cli --out docs/cli.md";

    public static Command Create(IAnsiConsole console, RootCommand root)
    {
        var outFile = new Option<string?>("--out") { Description = "Write the reference to FILE instead of standard output", HelpName = "FILE" };
        var cli = new Command("cli", "Print the command reference (docs/cli.md) generated from the command definitions.") { outFile };
        cli.SetAction(r =>
        {
            string text = CliReference(root);
            if (r.GetValue(outFile) is { Length: > 0 } path)
            {
                try { File.WriteAllText(path, text); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new BadInputException($"Cannot write {path}: {e.Message}");
                }
                console.Profile.Out.Writer.WriteLine($"wrote {path}");
            }
            else
                console.Profile.Out.Writer.Write(text);
            return ExitCodes.Ok;
        });
        return new Command("docs", "Generate documentation from the tool itself.") { Hidden = true, Subcommands = { cli } };
    }

    /// <summary>The environment variables vae reads (a test checks that every one the sources read is here).</summary>
    public static readonly IReadOnlyList<(string Name, string Meaning)> Environment =
    [
        ("VAEKIT_LIBTORCH", "the libtorch to load, as `--libtorch DIR|python` (the flag wins)"),
        ("VAEKIT_CACHE", "the decoded-dataset cache folder (`--cache-dir` wins; default `$XDG_CACHE_HOME/vaekit`, else `~/.cache/vaekit`)"),
        ("XDG_CACHE_HOME", "the parent of the default cache folder"),
        ("VAEKIT_DEBUG", "`1` or `true`: print the stack trace of an unexpected failure"),
        ("WANDB_API_KEY", "the W&B key (else the base URL's host in `~/.netrc`)"),
        ("WANDB_MODE", "`online` (default), `offline` (spool only; `vae wandb sync` later) or `disabled`"),
        ("WANDB_BASE_URL", "the W&B server (default https://api.wandb.ai)"),
        ("WANDB_PROJECT", "the W&B project when `--wandb-project` is not given (default `vaekit`)"),
        ("WANDB_ENTITY", "the W&B entity when `--wandb-entity` is not given"),
        ("NETRC", "the netrc file to read the W&B key from (default `~/.netrc`)"),
        ("HOME", "where `~/.netrc` and `~/.cache` are"),
        ("SLURM_CPUS_PER_TASK", "inside a Slurm sweep task: the thread count when `--threads` is not given"),
        ("SLURM_JOB_ID", "inside a Slurm sweep task: named in the task's log"),
        ("DOTNET_HOST_PATH", "the `dotnet` that `vae sweep` starts its runs with (set by the .NET host)"),
        ("CUBLAS_WORKSPACE_CONFIG", "set to `:4096:8` by `--deterministic` when unset (cuBLAS determinism)"),
        ("TERM", "`dumb`: no live progress bars"),
    ];

    public static string CliReference(RootCommand root)
    {
        var md = new StringBuilder();
        md.Append("# vae command reference\n\n");
        md.Append("<!-- Generated from the command definitions in src/VaeKit.Cli; do not edit. Regenerate with:\n");
        md.Append($"     {Regenerate} -->\n\n");
        md.Append("Every command, its options, their defaults and the environment variables `vae` reads, as the code defines ");
        md.Append("them. `vae COMMAND --help` prints the same for one command. Exit codes: 0 success, 1 failure, 2 bad input, ");
        md.Append("130 interrupted.\n\n");

        var commands = Walk(root, "vae").ToList();
        md.Append("| command | what it does |\n|---|---|\n");
        foreach (var (path, command) in commands.Skip(1))
            md.Append($"| [`{path}`](#{Anchor(path)}) | {Cell(command.Description)} |\n");
        md.Append('\n');

        foreach (var (path, command) in commands)
        {
            md.Append($"## {path}\n\n");
            if (!string.IsNullOrEmpty(command.Description)) md.Append(command.Description).Append("\n\n");
            var subcommands = command.Subcommands.Where(c => !c.Hidden).ToList();
            string usage = path + (subcommands.Count > 0 ? " COMMAND" : "")
                           + string.Concat(command.Arguments.Where(a => !a.Hidden).Select(a => $" {a.HelpName ?? a.Name.ToUpperInvariant()}"))
                           + " [options]";
            md.Append($"Usage: `{usage}`\n\n");
            if (subcommands.Count > 0)
                md.Append("Commands: ").Append(string.Join(", ", subcommands.Select(c => $"[`{c.Name}`](#{Anchor(path + " " + c.Name)})"))).Append(".\n\n");
            var arguments = command.Arguments.Where(a => !a.Hidden).ToList();
            if (arguments.Count > 0)
            {
                md.Append("| argument | description | default |\n|---|---|---|\n");
                foreach (var a in arguments)
                    md.Append($"| `{a.HelpName ?? a.Name}` | {Cell(a.Description)} | {Default(a.HasDefaultValue, a.HasDefaultValue ? a.GetDefaultValue() : null)} |\n");
                md.Append('\n');
            }
            var options = OwnOptions(command).ToList();
            if (options.Count > 0)
            {
                md.Append("| option | value | default | env | description |\n|---|---|---|---|---|\n");
                foreach (var o in options)
                {
                    string names = string.Join(", ", new[] { o.Name }.Concat(o.Aliases.Order(StringComparer.Ordinal)).Select(n => $"`{n}`"));
                    string value = IsFlag(o) ? "" : $"`{Cell(o.HelpName ?? ValueName(o))}`";
                    string flags = (o.Required ? " (required)" : "") + (o.Recursive && command is RootCommand ? " (every command)" : "");
                    md.Append($"| {names} | {value} | {Default(o.HasDefaultValue && !IsFlag(o), o.HasDefaultValue ? o.GetDefaultValue() : null)} | " +
                              $"{string.Join(", ", EnvironmentNames(o.Description).Select(e => $"`{e}`"))} | {Cell(o.Description)}{flags} |\n");
                }
                md.Append('\n');
            }
        }

        md.Append("## Environment variables\n\n| variable | effect |\n|---|---|\n");
        foreach (var (name, meaning) in Environment)
            md.Append($"| `{name}` | {meaning} |\n");
        return md.ToString();
    }

    private static IEnumerable<(string Path, Command Command)> Walk(Command command, string path)
    {
        yield return (path, command);
        foreach (var sub in command.Subcommands.Where(c => !c.Hidden))
            foreach (var item in Walk(sub, path + " " + sub.Name))
                yield return item;
    }

    /// <summary>The options a command declares, without help and version (every command has help; the root has version).</summary>
    private static IEnumerable<Option> OwnOptions(Command command) =>
        command.Options.Where(o => !o.Hidden && o is not System.CommandLine.Help.HelpOption)
            .Where(o => o is not VersionOption || command is RootCommand);

    private static bool IsFlag(Option o) => o.ValueType == typeof(bool) || o is VersionOption;

    private static string ValueName(Option o)
    {
        var type = Nullable.GetUnderlyingType(o.ValueType) ?? o.ValueType;
        if (type.IsEnum) return string.Join("|", Enum.GetNames(type).Select(n => n.ToLowerInvariant()));
        if (type == typeof(int) || type == typeof(long)) return "N";
        if (type == typeof(double) || type == typeof(float)) return "X";
        if (type.IsArray || (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))) return "VALUE…";
        return "VALUE";
    }

    private static string Default(bool has, object? value)
    {
        if (!has || value is null) return "";
        string text = value switch
        {
            string s => s,
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            float f => f.ToString("R", CultureInfo.InvariantCulture),
            System.Collections.IEnumerable e => string.Join(",", e.Cast<object>().Select(x => Convert.ToString(x, CultureInfo.InvariantCulture))),
            Enum e => e.ToString().ToLowerInvariant(),
            _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
        };
        return text.Length == 0 ? "" : $"`{text.Replace("|", "\\|", StringComparison.Ordinal)}`";
    }

    private static IEnumerable<string> EnvironmentNames(string? description) =>
        description is null ? [] : EnvironmentReference().Matches(description).Select(m => m.Groups[1].Value).Distinct();

    [GeneratedRegex(@"(?:\$|env: )([A-Z][A-Z0-9_]{2,})")]
    private static partial Regex EnvironmentReference();

    private static string Cell(string? text) =>
        (text ?? "").Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    /// <summary>GitHub's heading anchor: lower case, spaces to hyphens, punctuation other than - and _ dropped.</summary>
    public static string Anchor(string heading) =>
        new string(heading.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_').ToArray()).Replace(' ', '-');
}
