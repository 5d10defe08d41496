using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using VaeKit.Priors;

namespace VaeKit.Cli.Commands;

/// <summary><c>vae prior</c>: fit a prior on a trained run's codes and store it in RUN/priors/KIND/.</summary>
internal static class PriorCommand
{
    public static Command Create(IAnsiConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run directory written by vae train", Required = true }.Sets(Settings.Run.Directory);
        var kind = new Option<string>("--kind") { Description = "gmm (ae, vae, sigma-vae) or autoregressive (vq-vae), or a registered kind", Required = true }.Sets(Settings.Prior.Kind);
        var components = new Option<int?>("--components") { Description = $"Mixture components (gmm) [default: {GaussianMixturePriorKind.DefaultComponents}]" }.Sets(Settings.Prior.Components);
        var maxSteps = new Option<int?>("--max-steps") { Description = $"Training steps (autoregressive) [default: {AutoregressivePriorKind.DefaultSteps}]" }.Sets(Settings.Prior.MaxSteps);
        var seed = new Option<int>("--seed") { Description = "Seed of the initialisation and the batches", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch-size") { Description = "Sequences per step (autoregressive), images per encoder pass", DefaultValueFactory = _ => 64 }.Sets(Settings.Eval.BatchSize);
        var every = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints and held-out bits per code (autoregressive)", DefaultValueFactory = _ => 250 };
        var logEvery = new Option<int>("--log-every") { Description = "Steps between train rows of metrics.jsonl (autoregressive)", DefaultValueFactory = _ => 25 };
        var lr = new Option<double>("--lr") { Description = "Learning rate (autoregressive)", DefaultValueFactory = _ => 1e-3 };
        var restart = new Option<bool>("--restart") { Description = "Start the autoregressive fit over instead of resuming an unfinished one" };
        var resume = new Option<bool>("--resume") { Description = "Resume an unfinished autoregressive fit (the default when one of the same checkpoint is stored)" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "best, last, or a checkpoint file", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
        var device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
        var data = new Option<string?>("--data")
        {
            Description = "Fit on these images (split as the run's config splits its own) instead of the run's data; needed when the run was trained on images held in memory",
        }.Sets(Settings.Prior.Data);
        var wandbOptions = new WandbOptions();

        var command = new Command("prior", "Fit a prior on a trained run's codes (gmm for ae/vae/sigma-vae, autoregressive for vq-vae); stored in RUN/priors/KIND/ and used by --prior KIND.")
        {
            run, kind, components, maxSteps, seed, batch, every, logEvery, lr, restart, resume, checkpoint, device, data,
        };
        wandbOptions.AddTo(command);
        command.SetAction(r =>
        {
            if (r.GetValue(restart) && r.GetValue(resume)) throw new BadInputException("--restart and --resume exclude each other.");
            string name = r.GetValue(kind)!;
            if (name == PriorKinds.Standard) throw new BadInputException("The standard prior is the family's own and needs no fitting; choose another --kind.");
            using var model = TrainedModel.Load(r.GetValue(run)!, r.GetValue(checkpoint)!, r.GetValue(device)!);
            PriorKinds.Applicable(model, name);                  // refuse before W&B or data are touched
            using var wandb = wandbOptions.Connect(r, console);
            wandb?.Start(PriorKinds.Directory(model.Run, name), $"{Path.GetFileName(model.Run.Path)}-prior-{name}", new JsonObject { ["prior"] = name, ["run"] = model.Run.Path });
            int exit = ExitCodes.Failure;
            using var stop = new StopSignals();
            try
            {
                var options = new PriorFitOptions
                {
                    Components = r.GetValue(components), MaxSteps = r.GetValue(maxSteps), Seed = r.GetValue(seed),
                    BatchSize = r.GetValue(batch), CheckpointEvery = r.GetValue(every), LogEvery = r.GetValue(logEvery),
                    LearningRate = r.GetValue(lr), Restart = r.GetValue(restart),
                    OnRow = row =>
                    {
                        long step = row["step"]!.GetValue<long>();
                        var values = row.Where(p => p.Key is not ("type" or "step")).Select(p => new KeyValuePair<string, object?>(p.Key, p.Value!.GetValue<double>())).ToList();
                        console.MarkupLineInterpolated($"  step {step}: {string.Join("  ", values.Select(v => string.Create(CultureInfo.InvariantCulture, $"{v.Key} {v.Value:G5}")))}");
                        wandb?.Log(step, values);
                        WandbOptions.Print(wandb, console);
                    },
                };
                var fit = r.GetValue(data) is string other
                    ? FitOn(model, name, other, options, stop.Token)
                    : PriorKinds.Fit(model, name, options, stop.Token);
                using var prior = fit.Prior;
                console.MarkupLineInterpolated($"[green]fitted[/] {name} prior of {model.Run.Path} (step {model.Header.Step}, {Path.GetFileName(model.CheckpointPath)}) → {PriorKinds.Directory(model.Run, name)}");
                foreach (var (key, value) in fit.Record.Figures)
                {
                    console.MarkupLineInterpolated($"  {key.Replace('_', ' ')}: {value.ToString("G6", CultureInfo.InvariantCulture)}");
                    wandb?.SetSummary(key, value);
                }
                console.MarkupLineInterpolated($"  use it: vae sample --run {model.Run.Path} --prior {name}");
                exit = ExitCodes.Ok;
                return exit;
            }
            catch (OperationCanceledException e)
            {
                exit = ExitCodes.Interrupted;
                string what = e is PriorFitInterrupted stopped ? stopped.WhatExists : "nothing was stored, and the earlier fit, if any, is unchanged";
                console.MarkupLineInterpolated($"[yellow]interrupted: {what}.[/]");
                return exit;
            }
            catch (BadInputException)
            {
                exit = ExitCodes.BadInput;
                throw;
            }
            finally
            {
                WandbOptions.Finish(wandb, exit, console);
            }
        });
        return command;
    }

    private static PriorFit FitOn(TrainedModel model, string name, string source, PriorFitOptions options, CancellationToken cancellationToken)
    {
        using var images = model.LoadData(source, cancellationToken: cancellationToken, validationFraction: model.Config.Data.ValidationFraction);
        return PriorKinds.Fit(model, name, images, options, cancellationToken);
    }
}
