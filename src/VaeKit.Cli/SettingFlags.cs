using System.CommandLine;
using System.Runtime.CompilerServices;

namespace VaeKit.Cli;

/// <summary>
/// The library names settings by typed keys (<see cref="Settings.Train.LearningRate"/>, <c>train.learning_rate</c>); the
/// command line speaks in flags (<c>--lr</c>). Each option says which key it sets where it is defined
/// (<c>new Option&lt;double&gt;("--lr").Sets(Settings.Train.LearningRate)</c>); a command's table of key → flag is
/// read off its options, so a message is rendered in the flags of the command that ran, and an advised
/// <see cref="Operation"/> in the flags of the command it names. A key no option sets (e.g. <c>train.beta1</c>, only in
/// config.json) keeps its config.json name.
/// </summary>
internal static class SettingFlags
{
    private static readonly ConditionalWeakTable<Option, StrongBox<SettingKey>> Keys = new();

    /// <summary>Declares that <paramref name="option"/> sets <paramref name="key"/>.</summary>
    public static T Sets<T>(this T option, SettingKey key) where T : Option
    {
        Keys.AddOrUpdate(option, new StrongBox<SettingKey>(key));
        return option;
    }

    /// <summary>The key <paramref name="option"/> sets, if it sets one.</summary>
    public static SettingKey? KeyOf(Option option) => Keys.TryGetValue(option, out var key) ? key.Value : null;

    /// <summary>Key → option for <paramref name="command"/>: its own options and the recursive ones of its ancestors.</summary>
    public static IReadOnlyDictionary<SettingKey, Option> Table(Command command)
    {
        var table = new Dictionary<SettingKey, Option>();
        foreach (var option in OptionsOf(command))
            if (KeyOf(option) is SettingKey key)
                table.TryAdd(key, option);
        return table;
    }

    /// <summary>The flag of <paramref name="key"/> in <paramref name="command"/>, or its config.json name when none sets it.</summary>
    public static string FlagOf(Command command, SettingKey key) => Names(command).Name(key);

    /// <summary><paramref name="text"/> in the flags of <paramref name="command"/>.</summary>
    public static string Render(SettingText text, Command command) => text.Render(Names(command));

    /// <summary>How <paramref name="command"/> names settings (and operations, by the sibling commands they name).</summary>
    public static ISettingNames Names(Command command) => new CommandNames(command);

    private static IEnumerable<Option> OptionsOf(Command command)
    {
        foreach (var option in command.Options) yield return option;
        foreach (var parent in Ancestors(command))
            foreach (var option in parent.Options.Where(o => o.Recursive))
                yield return option;
    }

    private static IEnumerable<Command> Ancestors(Command command)
    {
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            yield return parent;
    }

    private sealed class CommandNames(Command command) : ISettingNames
    {
        private readonly IReadOnlyDictionary<SettingKey, Option> _table = Table(command);

        public string Name(SettingKey key)
        {
            if (_table.TryGetValue(key, out var option)) return option.Name;
            if (key.ModelOptionName is string name && _table.TryGetValue(Settings.Model.Options, out var options))
                return $"{options.Name} {name}";
            return key.Path;
        }

        public string Name(SettingValue setting)
        {
            if (setting.Key.ModelOptionName is string name && _table.TryGetValue(Settings.Model.Options, out var options))
                return $"{options.Name} {name}={setting.Value}";
            if (!_table.TryGetValue(setting.Key, out var option)) return setting.ToString();
            if (option.ValueType == typeof(bool) && setting.Value == "True") return option.Name;   // a switch: --slurm
            return $"{option.Name} {Sweeps.Slurm.Quote(setting.Value)}";
        }

        public string Name(Operation operation)
        {
            var root = Ancestors(command).LastOrDefault() ?? command;
            var target = root.Subcommands.FirstOrDefault(c => c.Name == operation.Name);
            if (target is null) return operation.ToString();
            var names = new CommandNames(target);
            return string.Join(' ', new[] { "vae", target.Name }.Concat(operation.Settings.Select(names.Name)));
        }
    }
}
