using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using VaeKit.Evaluation;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae eval</c>: one way of measuring a trained run, printed and written to runs/NAME/eval.json.</summary>
internal static class EvalCommand
{
    private static readonly EvalOptions Defaults = new();

    public static Command Create(IAnsiConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run directory written by vae train", Required = true }.Sets(Settings.Run.Directory);
        var data = new Option<string?>("--data") { Description = "Images to evaluate, all of them [default: the run's validation split]" }.Sets(Settings.Data.Source);
        var samples = new Option<int>("--samples") { Description = "Posterior samples k per image for the ELBO and the importance-weighted NLL bound", DefaultValueFactory = _ => Defaults.ImportanceSamples }.Sets(Settings.Eval.Samples);
        var variance = new Option<double>("--decoder-variance") { Description = "σ² of the Gaussian decoder the likelihood is measured under (½: the training loss at kl_weight 1 is −ELBO − D/2·log π)", DefaultValueFactory = _ => Defaults.DecoderVariance }.Sets(Settings.Eval.DecoderVariance);
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N images [default: all]" }.Sets(Settings.Eval.Limit);
        var seed = new Option<int>("--seed") { Description = "Seed of the posterior samples", DefaultValueFactory = _ => Defaults.Seed };
        var prior = new Option<string>("--prior") { Description = "Prior of the generated samples: standard (the family's own) or one fitted by vae prior; a non-standard one writes RUN/eval-PRIOR.json", DefaultValueFactory = _ => Priors.PriorKinds.Standard }.Sets(Settings.Eval.Prior);
        var fdNet = new Option<string?>("--fd-net") { Description = "Feature network of the image-space FD: fashion-mnist, faces, inception (the standard FID's file, from the cache), or a file: a TorchScript network of Inception's signature or a safetensors network (docs/fd.md) [default: fashion-mnist for Fashion-MNIST, else faces]" };
        var fdImages = new Option<int>("--fd-images") { Description = $"N of the FD: evaluation images and prior samples, at most {ImageFrechet.MaxImages} (0: no FD)", DefaultValueFactory = _ => Defaults.FdImages }.Sets(Settings.Eval.FdImages);
        var json = new Option<bool>("--json") { Description = "Print the report as JSON instead of a table" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "best, last, or a checkpoint file", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
        var device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);

        var command = new Command("eval", "Measure a trained run: MSE, PSNR, SSIM, KL, active units, ELBO, NLL bound, latent Fréchet distance, and the image-space FD of prior samples, reconstructions and a real floor; writes RUN/eval.json.")
        {
            run, data, samples, variance, limit, seed, prior, fdNet, fdImages, json, checkpoint, device,
        };
        command.SetAction(r =>
        {
            var options = new EvalOptions
            {
                ImportanceSamples = r.GetValue(samples), DecoderVariance = r.GetValue(variance),
                Limit = r.GetValue(limit), Seed = r.GetValue(seed), Prior = r.GetValue(prior)!,
                FdNet = r.GetValue(fdNet), FdImages = r.GetValue(fdImages),
            }.Validate();
            var report = Evaluator.EvaluateRun(r.GetValue(run)!, r.GetValue(data), options, r.GetValue(checkpoint)!, r.GetValue(device)!);
            if (r.GetValue(json))
                console.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(report, Json.Indented));
            else
                Print(console, report);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Print(IAnsiConsole console, EvalReport e)
    {
        static string F(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "–";
        console.MarkupLineInterpolated($"[bold]{e.Model}[/] {e.Run}  step {e.Step}  {e.Images} images ({e.Split} of {e.Data})");
        var table = new Table().AddColumn("metric").AddColumn(new TableColumn("value").RightAligned()).AddColumn("meaning");
        void Row(string name, string value, string meaning) => table.AddRow(Markup.Escape(name), Markup.Escape(value), Markup.Escape(meaning));
        Row("mse", F(e.Mse, "F5"), "per pixel, [0, 1] scale");
        Row("psnr", F(e.Psnr, "F2") + " dB", "from that mse");
        Row("ssim", F(e.Ssim, "F4"), "11×11 Gaussian window, σ = 1.5");
        if (e.Kl is not null)
        {
            Row("kl", F(e.Kl, "F2") + " nats", "KL(q(z|x) ‖ N(0, I)) per image");
            var top = e.KlPerDimension!.Select((v, i) => (v, i)).OrderByDescending(p => p.v).Take(5)
                       .Select(p => string.Create(CultureInfo.InvariantCulture, $"z{p.i} {p.v:F2}"));
            Row("kl per dim", string.Join("  ", top), "largest five, nats");
        }
        foreach (var statistic in e.CodeStatistics ?? [])
            Row(statistic.Name.Replace('_', ' '), statistic.Value.ToString("G6", CultureInfo.InvariantCulture), statistic.Meaning);
        Row("active units", $"{e.ActiveUnits} / {e.Latent}", "Var over data of the code > 0.01");
        if (e.ElboNats is not null)
        {
            Row("elbo", $"{F(e.ElboNats, "F1")} nats  {F(e.ElboBitsPerDim, "F4")} bits/dim", $"k = {e.ImportanceSamples}, decoder σ² = {F(e.DecoderVariance, "G4")}");
            Row("nll ≤", $"{F(e.NllNats, "F1")} nats  {F(e.NllBitsPerDim, "F4")} bits/dim", $"importance-weighted bound, k = {e.ImportanceSamples}");
        }
        Row("fréchet", F(e.Frechet, "F2"), $"N(0, I) vs a Gaussian fit of the codes (‖mean‖ {F(e.CodeMeanNorm, "F2")})");
        if (e.FrechetAggregate is not null)
            Row("fréchet q(z)", F(e.FrechetAggregate, "F2"), "N(0, I) vs the aggregate posterior: codes plus their σ²");
        if (e.Fd is not null)
        {
            Row("fd", F(e.Fd, "F2"), $"{e.FdImages} {e.Prior ?? Priors.PriorKinds.Standard}-prior samples vs {e.FdImages} evaluation images, {e.FdNet} features");
            Row("fd reconstructions", F(e.FdReconstructions, "F2"), "their reconstructions vs the same images");
            Row("fd floor", F(e.FdFloor, "F2"), e.FdFloor is null ? "no disjoint real images to compare" :
                $"{e.FdFloorImages ?? e.FdImages} real images of the other split: a perfect generator at this N");
            if (e.Kid is not null)
                Row("kid", $"{F(e.Kid, "F4")} ± {F(e.KidStd, "F4")}", $"the same samples, unbiased; mean ± s.d. over {KernelDistance.Subsets} subsets of {e.KidSubsetSize}");
            if (e.Precision is not null)
                Row("precision / recall", $"{F(e.Precision, "F3")} / {F(e.Recall, "F3")}",
                    $"samples inside the images' manifold (fidelity) / images inside the samples' (diversity), k = {PrecisionRecall.Neighbours}");
        }
        console.Write(table);
        if (e.FdNote is not null) console.MarkupLineInterpolated($"[yellow]note:[/] {e.FdNote}");
        console.MarkupLineInterpolated($"wrote {(e.Run is null ? "eval.json" : Evaluator.ReportPath(new Training.RunDirectory(e.Run), e.Prior ?? Priors.PriorKinds.Standard))}  ({e.Seconds:F1}s, {e.Prior ?? Priors.PriorKinds.Standard} prior)");
    }
}
