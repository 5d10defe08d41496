namespace VaeKit.Sweeps;

/// <summary>
/// A metric over the seeds of one setting: the mean, the sample standard deviation (n − 1 in the denominator; 0 for
/// one run), the smallest and largest value, and how many runs had it.
/// </summary>
internal sealed record Spread(double Mean, double Std, double Min, double Max, int N)
{
    public static Spread? Of(IEnumerable<double?> values)
    {
        var v = values.Where(x => x is not null).Select(x => x!.Value).ToList();
        if (v.Count == 0) return null;
        double mean = v.Average();
        double std = v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : 0;
        return new Spread(mean, std, v.Min(), v.Max(), v.Count);
    }
}

/// <summary>One setting of a sweep (its axis values without the seed) summarised over its seeds.</summary>
internal sealed record SweepGroup
{
    public required string Label { get; init; }
    public required string Model { get; init; }
    public required IReadOnlyDictionary<string, string> Settings { get; init; }
    /// <summary>Runs of this setting, and how many of them completed (diverged ones have no metrics).</summary>
    public int Runs { get; init; }
    public int Completed { get; init; }
    public Spread? Mse { get; init; }
    public Spread? Psnr { get; init; }
    public Spread? Ssim { get; init; }
    public Spread? Kl { get; init; }
    public Spread? ActiveUnits { get; init; }
    public Spread? ElboNats { get; init; }
    public Spread? NllNats { get; init; }
    public Spread? NllBitsPerDim { get; init; }
    public Spread? Frechet { get; init; }
    public Spread? FrechetAggregate { get; init; }
    public Spread? Fd { get; init; }
    public Spread? FdReconstructions { get; init; }
    public Spread? FdFloor { get; init; }
    public Spread? Kid { get; init; }
    public Spread? Precision { get; init; }
    public Spread? Recall { get; init; }

    /// <summary>A --with-ae reference row (an AE added beside the grid, not a value of a model axis).</summary>
    public bool IsAeRow => Model == Config.ModelKinds.Ae && !Settings.ContainsKey("model");
}

/// <summary>Groups a sweep's rows by setting, the seed axis folded into a <see cref="Spread"/> per metric.</summary>
internal static class SweepSummary
{
    /// <summary>One group per setting, in the order the settings first appear among the rows.</summary>
    public static IReadOnlyList<SweepGroup> Groups(IReadOnlyList<SweepRow> rows) =>
        rows.GroupBy(r => r.Model + "|" + string.Join("|", r.Settings.Where(s => s.Key != SweepGrid.SeedKey).Select(s => $"{s.Key}={s.Value}")))
            .Select(g =>
            {
                var first = g.First();
                var settings = first.Settings.Where(s => s.Key != SweepGrid.SeedKey).ToDictionary(s => s.Key, s => s.Value);
                var done = g.Where(r => r.Status == "completed").ToList();
                return new SweepGroup
                {
                    Label = SweepEntry.LabelOf(first.Model, settings), Model = first.Model, Settings = settings,
                    Runs = g.Count(), Completed = done.Count,
                    Mse = Spread.Of(done.Select(r => r.Mse)), Psnr = Spread.Of(done.Select(r => r.Psnr)),
                    Ssim = Spread.Of(done.Select(r => r.Ssim)), Kl = Spread.Of(done.Select(r => r.Kl)),
                    ActiveUnits = Spread.Of(done.Select(r => (double?)r.ActiveUnits)),
                    ElboNats = Spread.Of(done.Select(r => r.ElboNats)), NllNats = Spread.Of(done.Select(r => r.NllNats)),
                    NllBitsPerDim = Spread.Of(done.Select(r => r.NllBitsPerDim)), Frechet = Spread.Of(done.Select(r => r.Frechet)),
                    FrechetAggregate = Spread.Of(done.Select(r => r.FrechetAggregate)),
                    Fd = Spread.Of(done.Select(r => r.Fd)), FdReconstructions = Spread.Of(done.Select(r => r.FdReconstructions)),
                    FdFloor = Spread.Of(done.Select(r => r.FdFloor)), Kid = Spread.Of(done.Select(r => r.Kid)),
                    Precision = Spread.Of(done.Select(r => r.Precision)), Recall = Spread.Of(done.Select(r => r.Recall)),
                };
            })
            .ToList();
}
