using System.Globalization;
using System.Net;
using System.Text;
using VaeKit.Evaluation;
using VaeKit.Imaging;
using VaeKit.Priors;

namespace VaeKit.Reporting;

/// <summary>What <c>vae report --prior</c> adds: which priors, how many samples, from which checkpoint.</summary>
public sealed record ReportOptions
{
    /// <summary>Priors whose samples the report shows (standard, gmm, autoregressive, a user's); empty = no generation section.</summary>
    public IReadOnlyList<string> Priors { get; init; } = [];
    /// <summary>Samples per prior and run.</summary>
    public int Samples { get; init; } = 32;
    /// <summary>Images per grid row.</summary>
    public int Columns { get; init; } = 16;
    /// <summary>Seed of the draws: the same for every prior and run, so the pictures change only with the prior and the model.</summary>
    public int Seed { get; init; }
    /// <summary>best, last, or a checkpoint file (what the priors were fitted to).</summary>
    public string Checkpoint { get; init; } = "best";
    /// <summary>cpu, cuda or auto.</summary>
    public string Device { get; init; } = "cpu";
}

/// <summary>
/// The generation section of one run in the HTML report: per prior, its fit record, the image-space FD that
/// <c>vae eval --prior</c> stored for this checkpoint (or a pointer to the command when there is none, or it is stale),
/// and a grid of samples drawn now.
/// </summary>
internal static class ReportGeneration
{
    internal sealed record Section(string RunName, string Html);

    public static Section Draw(string runDirectory, string runName, ReportOptions options)
    {
        if (options.Samples < 1) throw new BadInputException($"report.samples must be positive (got {options.Samples}).");
        using var model = TrainedModel.Load(runDirectory, options.Checkpoint, options.Device);
        var html = new StringBuilder();
        html.Append("<div class=\"generation\">")
            .Append($"<h3>{Encode(runName)} · {Encode(model.Model.Config.Kind)} · {Encode(Path.GetFileName(model.CheckpointPath))} at step {model.Header.Step}</h3>")
            .Append("<table class=\"config\"><thead><tr><th>prior</th><th>fit</th><th>FD (N)</th><th>FD of reconstructions</th><th>FD floor</th></tr></thead><tbody>");
        var figures = new StringBuilder();
        foreach (string name in options.Priors.Distinct())
        {
            using var prior = model.Prior(name);              // refuses an inapplicable, missing or stale prior
            using var codes = model.SampleCodes(prior, options.Samples, 1.0, options.Seed);
            using var images = model.Decode(codes);
            using var grid = ImageGrid.Make(images, Math.Clamp(options.Columns, 1, options.Samples), scale: 2);
            string png = "data:image/png;base64," + Convert.ToBase64String(ImageGrid.EncodePng(grid));

            html.Append($"<tr><td>{Encode(name)}</td><td>{Encode(FitText(model, name))}</td>").Append(FdCells(model, name)).Append("</tr>");
            figures.Append($"<figure><img alt=\"{Encode(name)} samples\" src=\"{png}\"><figcaption>{Encode(name)} prior · {options.Samples} samples, seed {options.Seed}</figcaption></figure>");
        }
        html.Append("</tbody></table><div class=\"pair\">").Append(figures).Append("</div></div>");
        return new Section(runName, html.ToString());
    }

    /// <summary>"the family's own" for standard, else the stored record's step, settings and figures.</summary>
    private static string FitText(TrainedModel model, string name)
    {
        if (name == PriorKinds.Standard) return "the family's own";
        var record = PriorKinds.Record(model, name)!;        // Prior(name) has already checked it exists and matches
        var parts = new List<string> { $"fitted at step {record.Step}" };
        parts.AddRange(record.Settings.Select(p => $"{p.Key} {p.Value?.ToJsonString().Trim('"')}"));
        parts.AddRange(record.Figures.Select(p => $"{p.Key.Replace('_', ' ')} {Number(p.Value)}"));
        return string.Join(" · ", parts);
    }

    /// <summary>The FD cells from RUN/eval[-PRIOR].json when it measured this checkpoint, else a pointer to vae eval.</summary>
    private static string FdCells(TrainedModel model, string name)
    {
        string path = Evaluator.ReportPath(model.Run, name);
        EvalReport? report = null;
        if (File.Exists(path))
        {
            try { report = EvalReport.Load(path); }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException) { report = null; }
        }
        string command = $"vae eval --run {model.Run.Path} --prior {name}";
        if (report?.Fd is not double fd)
            return $"<td colspan=\"3\">not measured: {Encode(command)}</td>";
        if (report.Step != model.Header.Step || (report.Checkpoint is string c && Path.GetFullPath(c) != Path.GetFullPath(model.CheckpointPath)))
            return $"<td colspan=\"3\">measured at step {report.Step}, not this checkpoint: {Encode(command)}</td>";
        return $"<td>{Number(fd)} ({report.FdImages})</td><td>{Number(report.FdReconstructions)}</td><td>{Number(report.FdFloor)}</td>";
    }

    private static string Number(double? value) => value is double v ? v.ToString("G4", CultureInfo.InvariantCulture) : "";

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
