using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;
using VaeKit.Config;

namespace VaeKit.Models;

/// <summary>A model family: the kind name used in configs (<c>--model NAME</c>) and how to build and check its models.</summary>
public interface IModelFamily
{
    /// <summary>The <see cref="ModelConfig.Kind"/> values this family builds, e.g. "vae".</summary>
    IReadOnlyList<string> Kinds { get; }

    /// <summary>One line for <c>vae info</c> and help texts.</summary>
    string Description { get; }

    /// <summary>Throws <see cref="BadInputException"/> naming the setting when the config cannot be built; returns it
    /// (possibly completed with the family's defaults).</summary>
    ModelConfig Validate(ModelConfig config);

    /// <summary>A new, randomly initialised model (libtorch's global generator: the caller seeds it).</summary>
    VaeModel Create(ModelConfig config);

    /// <summary>How the family's own terms are shown (e.g. sigma-vae's σ): titles for report.html's charts. Terms not
    /// declared here still reach every output under their names.</summary>
    IReadOnlyList<MetricInfo> Metrics => [];
}

/// <summary>
/// The one place models are built. Built-in families: ae and vae (<see cref="AutoEncoder"/>), sigma-vae
/// (<see cref="SigmaVae"/>) and vq-vae (<see cref="VqVae"/>). A user family is registered with
/// <see cref="Register"/>; its assembly path is recorded in the config (<see cref="ModelConfig.Assembly"/>), so
/// <c>vae sample/eval --run</c> in another process load it from there.
/// </summary>
public static class ModelFactory
{
    private static readonly ConcurrentDictionary<string, IModelFamily> Families = new(StringComparer.Ordinal);

    static ModelFactory()
    {
        Register(new AutoEncoderFamily());
        Register(new SigmaVaeFamily());
        Register(new VqVaeFamily());
    }

    /// <summary>Makes a family's kinds buildable; a later registration of a kind replaces the earlier one.</summary>
    public static void Register(IModelFamily family)
    {
        foreach (var kind in family.Kinds) Families[kind] = family;
    }

    /// <summary>The registered kinds with their families.</summary>
    public static IReadOnlyDictionary<string, IModelFamily> Registered => Families;

    /// <summary>The family of <paramref name="config"/>, loading <see cref="ModelConfig.Assembly"/> if the kind is unknown.</summary>
    public static IModelFamily Family(ModelConfig config)
    {
        if (Families.TryGetValue(config.Kind, out var family)) return family;
        if (config.Assembly is string path)
        {
            LoadFamilies(path);
            if (Families.TryGetValue(config.Kind, out family)) return family;
        }
        string known = string.Join(", ", Families.Keys.Order());
        throw config.Assembly is null
            ? new BadInputException($"{Settings.Model.Kind} '{config.Kind}' is not a known model family ({known}).")
            : new BadInputException($"{Settings.Model.Kind} '{config.Kind}' is not a known model family ({known}); {config.Assembly} defines no family of that kind.");
    }

    /// <summary>Checks <paramref name="config"/> with its family; returns the completed config.</summary>
    public static ModelConfig Validate(ModelConfig config) => Family(config).Validate(config);

    /// <summary>Builds the model <paramref name="config"/> describes, after validating it.</summary>
    public static VaeModel Create(ModelConfig config)
    {
        var family = Family(config);
        return family.Create(family.Validate(config));
    }

    /// <summary>Registers every public <see cref="IModelFamily"/>, and every public <see cref="Priors.IPriorKind"/>,
    /// with a parameterless constructor in an assembly file: a family brings its own priors with it.</summary>
    public static void LoadFamilies(string assemblyPath)
    {
        Assembly assembly;
        try
        {
            var full = Path.GetFullPath(assemblyPath);
            assembly = AssemblyLoadContext.Default.Assemblies.FirstOrDefault(a => !a.IsDynamic && a.Location == full)
                       ?? AssemblyLoadContext.Default.LoadFromAssemblyPath(full);
        }
        catch (Exception e) when (e is IOException or BadImageFormatException or ArgumentException)
        {
            throw new BadInputException($"Cannot load the model family assembly {assemblyPath}: {e.Message}", e);
        }
        foreach (var type in assembly.GetExportedTypes())
            if (typeof(IModelFamily).IsAssignableFrom(type) && !type.IsAbstract && type.GetConstructor(Type.EmptyTypes) is not null)
                Register((IModelFamily)Activator.CreateInstance(type)!);
            else if (typeof(Priors.IPriorKind).IsAssignableFrom(type) && !type.IsAbstract && type.GetConstructor(Type.EmptyTypes) is not null)
                Priors.PriorKinds.Register((Priors.IPriorKind)Activator.CreateInstance(type)!);
    }
}

/// <summary>Validation of a <see cref="ModelConfig"/> by its family, here rather than on the record so that
/// <c>Config</c> depends on nothing above it.</summary>
public static class ModelConfigValidation
{
    /// <summary>Checks the config with its family (<see cref="ModelFactory.Validate"/>); returns the completed config.</summary>
    public static ModelConfig Validate(this ModelConfig config) => ModelFactory.Validate(config);
}
