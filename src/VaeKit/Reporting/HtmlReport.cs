using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VaeKit.Reporting;

/// <summary>
/// One self-contained HTML file for one or more run directories: loss, reconstruction, KL, MSE, PSNR and learning-rate
/// curves (train and validation; several runs overlaid), the per-epoch grids with a slider, and the config (one run)
/// or a side-by-side table (several). Charts are drawn by Chart.js 4.6.1 (MIT), embedded with its licence, so the
/// file needs no network. Data comes from each run's config.json, metrics.jsonl and images/.
/// </summary>
public static partial class HtmlReport
{
    /// <summary>Version of the Chart.js copy embedded in every report.</summary>
    public const string ChartJsVersion = "4.6.1";

    /// <summary>Fields of a metrics.jsonl row that are not numbers to chart.</summary>
    private static readonly HashSet<string> RowFields = ["type", "step", "epoch", "time"];

    /// <summary>Writes the report for <paramref name="runDirectories"/> to <paramref name="outputPath"/> (atomically).
    /// With <see cref="ReportOptions.Priors"/>, each run gets a generation section: samples drawn now from its
    /// checkpoint under each prior, the prior's record, and the FD of <c>vae eval --prior</c> where one is stored.</summary>
    public static void Write(IReadOnlyList<string> runDirectories, string outputPath, ReportOptions? options = null)
    {
        if (runDirectories.Count == 0) throw new BadInputException("Give at least one run directory, e.g. vae report runs/NAME.");
        options ??= new ReportOptions();
        var runs = runDirectories.Select(LoadRun).ToList();
        // Every prior of every run is loaded before anything is written: a missing or stale fit is one message, no page.
        var generation = options.Priors.Count == 0 ? [] : runs.Select(r => ReportGeneration.Draw(r.Directory, r.Name, options)).ToList();
        string html = Render(runs, generation);
        try { Json.WriteAllTextAtomic(outputPath, html); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"Cannot write the report to {outputPath}: {e.Message}", e);
        }
    }

    private sealed record RunData(string Name, string Directory, JsonObject Config, JsonObject Series, JsonArray Epochs, JsonObject Final,
                                  IReadOnlyList<Models.MetricInfo> Declared);

    /// <summary>The declarations that apply to a run: the standard numbers, then its family's own (when the family is
    /// registered in this process, as the built-in ones and a loaded user family are).</summary>
    private static IReadOnlyList<Models.MetricInfo> Declarations(JsonObject config)
    {
        string? kind = config["model"]?["kind"]?.GetValue<string>();
        var family = kind is not null && Models.ModelFactory.Registered.TryGetValue(kind, out var f) ? f.Metrics : [];
        return [.. Models.MetricNames.Standard, .. family];
    }

    private static RunData LoadRun(string directory)
    {
        string full = Path.GetFullPath(directory);
        string configPath = Path.Combine(full, "config.json"), metricsPath = Path.Combine(full, "metrics.jsonl");
        if (!File.Exists(configPath) || !File.Exists(metricsPath))
            throw new BadInputException($"{directory} is not a run directory (config.json and metrics.jsonl are missing); give runs/NAME.");
        JsonObject config;
        try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? new JsonObject(); }
        catch (JsonException e) { throw new BadInputException($"{configPath} is damaged ({e.Message})."); }

        // Every number of the train rows (NAME) and every val_NAME of the epoch rows is a series, unless its
        // declaration says it is not charted: a family's or a user's new term needs no edit here.
        var declared = Declarations(config);
        var hidden = declared.Where(m => !m.Charted).Select(m => m.Name).ToHashSet();
        var series = new JsonObject();
        void Add(string key, double step, double value)
        {
            if (series[key] is not JsonArray points) series[key] = points = new JsonArray();
            points.Add(new JsonArray(step, value));
        }
        var epochRows = new List<JsonObject>();
        foreach (var line in File.ReadLines(metricsPath))
        {
            JsonObject? row;
            try { row = JsonNode.Parse(line) as JsonObject; }
            catch (JsonException) { continue; }   // a torn last line after a crash
            if (row is null) continue;
            string type = row["type"]?.GetValue<string>() ?? "";
            double? step = Number(row["step"]);
            if (step is null) continue;
            foreach (var (key, node) in row)
            {
                if (RowFields.Contains(key) || Number(node) is not double value) continue;
                if (type == "train" && !hidden.Contains(key)) Add("train_" + key, step.Value, value);
                else if (type == "epoch" && key.StartsWith("val_", StringComparison.Ordinal) && !hidden.Contains(key[4..])) Add(key, step.Value, value);
            }
            if (type == "epoch") epochRows.Add(row);
        }

        foreach (var (key, points) in series.ToList())
            series[key] = Thin((JsonArray)points!);

        var epochs = new JsonArray();
        foreach (var row in epochRows)
        {
            int epoch = row["epoch"]?.GetValue<int>() ?? 0;
            epochs.Add(new JsonObject
            {
                ["epoch"] = epoch, ["step"] = Number(row["step"]),
                ["val_loss"] = Number(row["val_loss"]), ["val_psnr"] = Number(row["val_psnr"]), ["train_loss"] = Number(row["train_loss"]),
                ["reconstruction"] = ImageData(Path.Combine(full, "images", $"epoch_{epoch:D3}_reconstruction.png")),
                ["samples"] = ImageData(Path.Combine(full, "images", $"epoch_{epoch:D3}_samples.png")),
            });
        }

        var last = epochRows.LastOrDefault();
        var best = epochRows.Where(r => Number(r["val_loss"] ?? r["train_loss"]) is not null)
                            .MinBy(r => Number(r["val_loss"] ?? r["train_loss"]));
        var final = new JsonObject
        {
            ["epochs"] = epochRows.Count,
            ["steps"] = Number(last?["step"]),
            ["parameters"] = Number(config["parameters"]),
            ["final train loss"] = Number(last?["train_loss"]),
            ["final val loss"] = Number(last?["val_loss"]),
            ["final val psnr (dB)"] = Number(last?["val_psnr"]),
            ["best loss"] = Number(best?["val_loss"] ?? best?["train_loss"]),
            ["best epoch"] = Number(best?["epoch"]),
        };
        return new RunData(Path.GetFileName(full), full, config, series, epochs, final, declared);
    }

    /// <summary>
    /// At most <see cref="MaxPoints"/> points per curve (every k-th, the last kept), so a long run's report stays a
    /// few MB and draws at once; the charts show a trend, the exact numbers are in metrics.jsonl.
    /// </summary>
    private static JsonArray Thin(JsonArray points)
    {
        if (points.Count <= MaxPoints) return points;
        int stride = (points.Count + MaxPoints - 1) / MaxPoints;
        var thinned = new JsonArray();
        for (int i = 0; i < points.Count; i++)
            if (i % stride == 0 || i == points.Count - 1) thinned.Add(points[i]!.DeepClone());
        return thinned;
    }

    private const int MaxPoints = 4000;

    private static bool HasPoints(JsonObject series, string? key) => key is not null && series[key] is JsonArray { Count: > 0 };

    /// <summary>
    /// The charts, in order: the declared numbers (standard, then the families') that some run has, then undeclared
    /// ones under their own names in the order met, the learning rate last.
    /// </summary>
    private static List<Models.MetricInfo> Charts(List<RunData> runs)
    {
        var declared = new List<Models.MetricInfo>();
        foreach (var m in runs.SelectMany(r => r.Declared))
            if (declared.All(d => d.Name != m.Name)) declared.Add(m);
        var names = runs.SelectMany(r => r.Series.Select(p => p.Key))
                        .Select(k => k.StartsWith("train_", StringComparison.Ordinal) ? k[6..] : k.StartsWith("val_", StringComparison.Ordinal) ? k[4..] : k)
                        .Distinct().ToList();
        bool Has(Models.MetricInfo m) => runs.Any(r => HasPoints(r.Series, "train_" + m.Name) || (m.Validated && HasPoints(r.Series, "val_" + m.Name)));
        var charts = declared.Where(m => m.Charted && m.Name != Models.MetricNames.LearningRate && Has(m)).ToList();
        charts.AddRange(names.Where(n => declared.All(d => d.Name != n)).Select(n => new Models.MetricInfo(n, n)));
        charts.AddRange(declared.Where(m => m.Name == Models.MetricNames.LearningRate && Has(m)));
        return charts;
    }

    private static string Render(List<RunData> runs, List<ReportGeneration.Section> generation)
    {
        var data = new JsonObject
        {
            // A chart appears when some run has its numbers (no KL chart for an AE or a VQ-VAE, no σ chart for a VAE).
            ["charts"] = new JsonArray(Charts(runs).Select(c => (JsonNode)new JsonObject
            {
                ["title"] = c.Title, ["train"] = "train_" + c.Name, ["validation"] = c.Validated ? "val_" + c.Name : null,
            }).ToArray()),
            ["runs"] = new JsonArray(runs.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name, ["series"] = r.Series.DeepClone(), ["epochs"] = r.Epochs.DeepClone(),
            }).ToArray()),
        };

        var html = new StringBuilder();
        string title = runs.Count == 1 ? $"VaeKit run {runs[0].Name}" : $"VaeKit: {runs.Count} runs";
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        html.Append($"<title>{Encode(title)}</title>\n<style>{Css}</style>\n");
        html.Append("<!-- Chart.js ").Append(ChartJsVersion).Append(" (https://www.chartjs.org), embedded under its licence:\n")
            .Append(Resource("chart.js-LICENSE.md").Replace("--", "- -")).Append("-->\n");
        html.Append("<script>").Append(ChartJs()).Append("</script>\n</head>\n<body>\n");
        html.Append($"<h1>{Encode(title)}</h1>\n");
        html.Append("<p class=\"meta\">").Append(string.Join(" · ", runs.Select(r => Encode(r.Directory))))
            .Append($" · generated {DateTimeOffset.Now:yyyy-MM-dd HH:mm}</p>\n");
        html.Append("<div id=\"errors\"></div>\n<h2>Curves</h2>\n<div class=\"charts\" id=\"charts\"></div>\n");
        html.Append("<h2>Images per epoch</h2>\n<div id=\"grids\"></div>\n");
        if (generation.Count > 0)
        {
            html.Append("<h2>Generation</h2>\n");
            foreach (var section in generation) html.Append(section.Html).Append('\n');
        }
        html.Append(runs.Count == 1 ? "<h2>Config</h2>\n" : "<h2>Runs side by side</h2>\n").Append(Table(runs)).Append('\n');
        // The default encoder escapes '<', so the data cannot close the script element.
        html.Append("<script type=\"application/json\" id=\"data\">").Append(data.ToJsonString()).Append("</script>\n");
        html.Append("<script>").Append(Script).Append("</script>\n</body></html>\n");
        return html.ToString();
    }

    /// <summary>One run: its config. Several: final metrics, then every config value, differing rows highlighted.</summary>
    private static string Table(List<RunData> runs)
    {
        var flat = runs.Select(r => Flatten(r.Config)).ToList();
        var finals = runs.Select(r => r.Final.ToDictionary(p => p.Key, p => Format(p.Value))).ToList();
        var keys = flat.SelectMany(f => f.Keys).Distinct().ToList();
        var table = new StringBuilder("<table class=\"config\"><thead><tr><th></th>");
        foreach (var run in runs) table.Append($"<th>{Encode(run.Name)}</th>");
        table.Append("</tr></thead><tbody>");
        void Row(string key, IEnumerable<string> values)
        {
            var list = values.ToList();
            bool differs = list.Distinct().Count() > 1;
            table.Append(differs ? "<tr class=\"differs\">" : "<tr>").Append($"<td>{Encode(key)}</td>");
            foreach (var v in list) table.Append($"<td>{Encode(v)}</td>");
            table.Append("</tr>");
        }
        foreach (var key in finals[0].Keys) Row(key, finals.Select(f => f.GetValueOrDefault(key, "")));
        foreach (var key in keys) Row(key, flat.Select(f => f.GetValueOrDefault(key, "")));
        return table.Append("</tbody></table>").ToString();
    }

    private static Dictionary<string, string> Flatten(JsonObject config)
    {
        var result = new Dictionary<string, string>();
        void Walk(string prefix, JsonNode? node)
        {
            if (node is JsonObject obj)
                foreach (var (key, value) in obj) Walk(prefix.Length == 0 ? key : $"{prefix}.{key}", value);
            else
                result[prefix] = Format(node);
        }
        Walk("", config);
        return result;
    }

    private static string Format(JsonNode? node) => node switch
    {
        null => "",
        JsonValue v when v.TryGetValue(out double d) => d.ToString("G6", System.Globalization.CultureInfo.InvariantCulture),
        JsonValue v when v.TryGetValue(out string? s) => s ?? "",
        JsonArray a => string.Join(", ", a.Select(Format)),
        _ => node.ToJsonString(),
    };

    private static double? Number(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) ? d : null;

    private static string? ImageData(string path) =>
        File.Exists(path) ? "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes(path)) : null;

    private static string Encode(string text) => WebUtility.HtmlEncode(text);

    private static string ChartJs() => SourceMap().Replace(Resource($"chart-{ChartJsVersion}.umd.min.js"), "");

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("VaeKit.Reporting.Vendor." + name)
                           ?? throw new InvalidOperationException($"The embedded resource {name} is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"//# sourceMappingURL=\S+\s*$")]
    private static partial Regex SourceMap();

    private const string Css = """
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
        h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
        .meta { color: #666; font-size: 12px; margin: 0; }
        .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; }
        .chart { border: 1px solid #ddd; border-radius: 6px; padding: 8px; height: 260px; }
        .run-grids { border: 1px solid #ddd; border-radius: 6px; padding: 8px; margin-bottom: 16px; }
        .run-grids .pair { display: flex; gap: 16px; flex-wrap: wrap; }
        .run-grids figure { margin: 0; } .run-grids img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ccc; }
        .run-grids input[type=range] { width: 320px; vertical-align: middle; }
        table.config { border-collapse: collapse; font-size: 13px; }
        table.config td, table.config th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
        tr.differs td { background: #fff6d6; }
        .generation { border: 1px solid #ddd; border-radius: 6px; padding: 8px; margin-bottom: 16px; }
        .generation h3 { font-size: 15px; margin: 0 0 8px; } .generation .pair { display: flex; gap: 16px; flex-wrap: wrap; margin-top: 8px; }
        .generation figure { margin: 0; } .generation img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ccc; }
        #errors { color: #b00; }
        """;

    private const string Script = """
        window.addEventListener('error', e => { document.getElementById('errors').textContent += 'error: ' + e.message + '\n'; });
        const data = JSON.parse(document.getElementById('data').textContent);
        const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
        const points = s => (s || []).map(p => ({ x: p[0], y: p[1] }));
        let drawn = 0;
        for (const chart of data.charts) {
          const datasets = [];
          data.runs.forEach((run, i) => {
            const prefix = data.runs.length > 1 ? run.name + ' ' : '';
            const color = colors[i % colors.length];
            if (chart.train && run.series[chart.train].length)
              datasets.push({ label: prefix + 'train', data: points(run.series[chart.train]), borderColor: color, backgroundColor: color,
                              borderWidth: 1.2, pointRadius: 0 });
            if (chart.validation && run.series[chart.validation].length)
              datasets.push({ label: prefix + 'validation', data: points(run.series[chart.validation]), borderColor: color, backgroundColor: color,
                              borderDash: [6, 3], borderWidth: 2, pointRadius: 3 });
          });
          const box = document.createElement('div'); box.className = 'chart';
          const canvas = document.createElement('canvas'); box.appendChild(canvas);
          document.getElementById('charts').appendChild(box);
          new Chart(canvas, {
            type: 'line', data: { datasets },
            options: { animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
                       plugins: { title: { display: true, text: chart.title + (datasets.length ? '' : ' (no rows logged)') }, legend: { labels: { boxWidth: 12 } } },
                       scales: { x: { type: 'linear', title: { display: true, text: 'step' } } } }
          });
          drawn++;
        }
        document.body.dataset.charts = drawn;

        let grids = 0;
        for (const run of data.runs) {
          const epochs = run.epochs.filter(e => e.reconstruction || e.samples);
          const section = document.createElement('div'); section.className = 'run-grids';
          document.getElementById('grids').appendChild(section);
          if (!epochs.length) { section.textContent = run.name + ': no grids yet'; continue; }
          const head = document.createElement('div');
          const label = document.createElement('span');
          const slider = Object.assign(document.createElement('input'), { type: 'range', min: 0, max: epochs.length - 1, value: epochs.length - 1 });
          const prev = Object.assign(document.createElement('button'), { textContent: '◀' });
          const next = Object.assign(document.createElement('button'), { textContent: '▶' });
          head.append(run.name + ' ', prev, slider, next, ' ', label);
          const pair = document.createElement('div'); pair.className = 'pair';
          const figure = (caption) => { const f = document.createElement('figure'); const img = document.createElement('img');
                                        const c = document.createElement('figcaption'); c.textContent = caption; f.append(img, c); pair.appendChild(f); return img; };
          const recon = figure('reconstructions (odd rows: originals, even rows: reconstructions)');
          const samples = figure('samples from fixed z');
          section.append(head, pair);
          const show = () => {
            const e = epochs[+slider.value];
            label.textContent = `epoch ${e.epoch} / ${epochs[epochs.length - 1].epoch}` + (e.val_loss != null ? ` · val loss ${e.val_loss.toFixed(2)}` : '')
                                + (e.val_psnr != null ? ` · PSNR ${e.val_psnr.toFixed(2)} dB` : '');
            if (e.reconstruction) recon.src = e.reconstruction; if (e.samples) samples.src = e.samples;
          };
          slider.addEventListener('input', show);
          prev.addEventListener('click', () => { slider.value = Math.max(0, +slider.value - 1); show(); });
          next.addEventListener('click', () => { slider.value = Math.min(epochs.length - 1, +slider.value + 1); show(); });
          show();
          grids++;
        }
        document.body.dataset.grids = grids;
        """;
}
