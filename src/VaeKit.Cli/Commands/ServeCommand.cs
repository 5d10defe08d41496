using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using Spectre.Console;
using VaeKit.Cli.Serving;
using VaeKit.Serving;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae serve</c>: explore trained runs' latent spaces in a browser (README "Exploring runs in a browser").</summary>
internal static class ServeCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var runs = new Option<string[]>("--run") { Description = "Run directory to serve; repeat for side-by-side runs", AllowMultipleArgumentsPerToken = false }.Sets(Settings.Serve.Runs);
        var sweep = new Option<string?>("--sweep") { Description = "Serve every finished run of a sweep (sweeps/NAME)" }.Sets(Settings.Serve.Sweep);
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free one)", DefaultValueFactory = _ => 8080 };
        var host = new Option<string>("--host") { Description = "Address to listen on; 0.0.0.0 opens it to the network (no authentication)", DefaultValueFactory = _ => "127.0.0.1" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "best or last", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
        var prior = new Option<string>("--prior") { Description = "Prior the sample button draws from, for every run: standard, or one fitted by vae prior", DefaultValueFactory = _ => Priors.PriorKinds.Standard }.Sets(Settings.Eval.Prior);
        var device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
        var maxUpload = new Option<int>("--max-upload-mb") { Description = "Largest upload in MB", DefaultValueFactory = _ => 8 };
        var maxSide = new Option<int>("--max-image-side") { Description = "Longest side in pixels an uploaded image may have (checked from its header before decoding)", DefaultValueFactory = _ => 4096 };
        var bench = new Option<bool>("--bench") { Description = "Instead of serving: load-test the server on 127.0.0.1 (decode latency and requests/s at 1, 4, 16 clients; memory over a few thousand requests), then exit" };
        var benchRequests = new Option<int>("--bench-requests") { Description = "Decode requests per concurrency level with --bench", DefaultValueFactory = _ => 2000 };

        var command = new Command("serve", "Explore trained runs in a browser: sliders over the busiest latent dimensions, samples, encodings, interpolations.")
        {
            runs, sweep, port, host, checkpoint, prior, device, maxUpload, maxSide, bench, benchRequests,
        };
        command.SetAction(r =>
        {
            if (r.GetValue(checkpoint) is not ("best" or "last")) throw new BadInputException("--checkpoint must be best or last.");
            if (r.GetValue(maxUpload) is < 1 or > 512) throw new BadInputException("--max-upload-mb must be between 1 and 512.");
            if (r.GetValue(maxSide) is < 16 or > 65535) throw new BadInputException("--max-image-side must be between 16 and 65535.");
            if (r.GetValue(port) is < 0 or > 65535) throw new BadInputException($"--port must be between 0 and 65535 (got {r.GetValue(port)}).");
            if (r.GetValue(benchRequests) is < 10 or > 1_000_000) throw new BadInputException("--bench-requests must be between 10 and 1,000,000.");
            bool benchmark = r.GetValue(bench);
            var options = new ServeOptions
            {
                // The benchmark always runs on loopback, on a free port.
                Host = benchmark ? "127.0.0.1" : r.GetValue(host)!,
                Port = benchmark ? 0 : r.GetValue(port),
                Limits = new UploadLimits
                {
                    MaxBytes = r.GetValue(maxUpload) * 1024L * 1024, MaxSide = r.GetValue(maxSide),
                    MaxPixels = Math.Min(4096L * 4096, (long)r.GetValue(maxSide) * r.GetValue(maxSide)),
                },
            };
            var list = ServedRuns.Resolve(r.GetValue(runs) ?? [], r.GetValue(sweep));
            CheckPortFree(options);

            var models = new List<ServedModel>();
            try
            {
                foreach (var (run, i) in list.Select((run, i) => (run, i)))
                {
                    console.MarkupLineInterpolated($"loading {run.Label} ({i + 1} of {list.Count}): {run.Directory}");
                    models.Add(ServedModel.Load(run.Directory, run.Label, r.GetValue(checkpoint)!, r.GetValue(device)!, r.GetValue(prior)!));
                }
                if (models.Select(m => m.Latent).Distinct().Count() > 1)
                    console.MarkupLine("[yellow]note:[/] the runs' latent sizes differ, so the page cannot decode one code with every run; " +
                                       "sample and encode still act on all runs, each with its own code.");
                return Serve(console, models, options, benchmark, r.GetValue(benchRequests));
            }
            finally
            {
                foreach (var model in models) model.Dispose();
            }
        });
        return command;
    }

    private static int Serve(IAnsiConsole console, IReadOnlyList<ServedModel> models, ServeOptions options, bool benchmark, int benchRequests)
    {
        var host = ServeHost.StartAsync(models, options, Console.Error).GetAwaiter().GetResult();
        try
        {
            if (benchmark)
                return ServeBench.Run(host, models, benchRequests, console).GetAwaiter().GetResult();
            if (!IPAddress.IsLoopback(IPAddress.Parse(host.Address.Host.Trim('[', ']'))))
                console.MarkupLine("[yellow]warning:[/] listening beyond this machine; anyone who can reach it can use the server (there is no authentication).");
            console.MarkupLineInterpolated($"serving {models.Count} run(s) at {host.Address} — open it in a browser; Ctrl-C stops");
            host.WaitForShutdownAsync().GetAwaiter().GetResult();
            console.MarkupLine("stopped");
            return ExitCodes.Ok;
        }
        finally
        {
            host.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Fails before minutes of model loading when the port is taken (Kestrel would say so only at the end).</summary>
    private static void CheckPortFree(ServeOptions options)
    {
        if (options.Port == 0) return;
        IPAddress ip = options.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host, out var parsed) ? parsed
            : throw new BadInputException($"--host must be an IP address of this machine (127.0.0.1, 0.0.0.0, ::1) or localhost (got '{options.Host}').");
        try
        {
            var probe = new TcpListener(ip, options.Port);
            probe.Start();
            probe.Stop();
        }
        catch (SocketException e)
        {
            throw new BadInputException(e.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"Port {options.Port} on {options.Host} is in use; pick another with --port (or stop what uses it)."
                : $"Cannot listen on {options.Host}:{options.Port}: {e.Message}. Check --host (an address of this machine).", e);
        }
    }
}
