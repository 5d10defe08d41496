using System.CommandLine;

namespace VaeKit.Cli.Commands;

/// <summary>
/// The flags of every command that loads a trained run and writes a PNG grid (<c>sample</c>, <c>reconstruct</c>,
/// <c>interpolate</c>), and the two things they do with them: load the model, choose where the picture goes.
/// </summary>
internal sealed class RunOptions
{
    private readonly Option<string> _run = new Option<string>("--run")
    {
        Description = "Run directory written by vae train (e.g. runs/tiny-vae-20261125-120000)",
        Required = true,
    }.Sets(Settings.Run.Directory);
    private readonly Option<string> _checkpoint = new Option<string>("--checkpoint") { Description = "best, last, or a checkpoint file", DefaultValueFactory = _ => "best" }.Sets(Settings.Run.Checkpoint);
    private readonly Option<string> _device = new Option<string>("--device") { Description = "cpu, cuda or auto", DefaultValueFactory = _ => "auto" }.Sets(Settings.Runtime.Device);
    private readonly Option<int> _scale = new("--scale") { Description = "Nearest-neighbour enlargement of each image", DefaultValueFactory = _ => 2 };
    private readonly Option<string?> _out = new("--out") { Description = "PNG to write [default: inside the run directory]" };

    /// <summary>Adds the shared flags after the command's own, so help lists the specific ones first.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _run, _checkpoint, _scale, _device, _out })
            command.Options.Add(option);
    }

    public TrainedModel Load(ParseResult r) => TrainedModel.Load(r.GetValue(_run)!, r.GetValue(_checkpoint)!, r.GetValue(_device)!);

    public int Scale(ParseResult r) => Math.Max(1, r.GetValue(_scale));

    /// <summary>--out, or RUN/STEM-TIMESTAMP.png so repeated calls never overwrite each other.</summary>
    public string OutPath(ParseResult r, TrainedModel model, string stem) =>
        r.GetValue(_out) ?? Path.Combine(model.Run.Path, $"{stem}-{DateTime.Now:yyyyMMdd-HHmmss-fff}.png");
}
