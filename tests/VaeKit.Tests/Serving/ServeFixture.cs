using VaeKit.Cli.Serving;
using VaeKit.Serving;
using VaeKit.Tests.Cli;

namespace VaeKit.Tests.Serving;

/// <summary>
/// Three tiny runs trained once for the serving tests (a few seconds: 8 and 16 channels, 6 steps): a VAE and an AE
/// with 8 latent dimensions, and a VAE with 4. A server on 127.0.0.1, port 0, serves the first two.
/// </summary>
public sealed class ServeFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new("vaekit-serve");

    public string Vae8 => _dir["runs/vae8"];
    public string Ae8 => _dir["runs/ae8"];
    public string Vae4 => _dir["runs/vae4"];
    public string Root => _dir.Path;

    public IReadOnlyList<ServedModel> Models { get; private set; } = [];
    public ServeHost Host { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public UploadLimits Limits { get; } = new() { MaxBytes = 256 * 1024, MaxSide = 1024, MaxPixels = 1024 * 1024 };

    public async Task InitializeAsync()
    {
        Train("vae8", "--latent", "8");
        Train("ae8", "--latent", "8", "--model", "ae");
        Train("vae4", "--latent", "4");
        Models = [ServedModel.Load(Vae8), ServedModel.Load(Ae8)];
        Host = await ServeHost.StartAsync(Models, new ServeOptions { Port = 0, Limits = Limits }, TextWriter.Null);
        Http = new HttpClient { BaseAddress = Host.Address };
    }

    private void Train(string name, params string[] extra)
    {
        var (exit, output, error) = CliRunner.Run([
            "train", "--data", "synthetic:256", "--widths", "8,16", "--epochs", "1", "--max-steps", "6", "--batch-size", "32",
            "--threads", "1", "--name", name, "--runs-dir", _dir["runs"], "--cache-dir", _dir["cache"], .. extra]);
        Assert.True(exit == 0, output + error);
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        if (Host is not null) await Host.DisposeAsync();
        foreach (var model in Models) model.Dispose();
        _dir.Dispose();
    }
}

/// <summary>One <see cref="ServeFixture"/> (three trainings) for every serving test class.</summary>
[CollectionDefinition("serve")]
public sealed class ServeCollection : ICollectionFixture<ServeFixture>;
