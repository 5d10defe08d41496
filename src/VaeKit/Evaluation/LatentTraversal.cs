using VaeKit.Data;
using static TorchSharp.torch;

namespace VaeKit.Evaluation;

/// <summary>
/// The dimensions a traversal shows (best first) with their scores, what the scores are ("kl": the mean KL of a
/// Gaussian posterior; "variance": the codes' variance, for any other posterior), every dimension's mean and standard
/// deviation over the encoded images' codes, and the decoded rows.
/// </summary>
public sealed record Traversal(int[] Dimensions, double[] Scores, string ScoreName, double[] CodeMean, double[] CodeStd, Tensor Images) : IDisposable
{
    /// <inheritdoc/>
    public void Dispose() => Images.Dispose();
}

/// <summary>
/// Latent traversals (Higgins et al. 2017, β-VAE, Fig. 1): hold a base code and move one dimension at a time from
/// −3σ to +3σ, σ that dimension's standard deviation over the data's codes, decoding each point.
/// </summary>
public static class LatentTraversal
{
    /// <summary>
    /// Encodes up to <paramref name="maxImages"/> images, ranks the dimensions by mean KL (a Gaussian posterior) or
    /// code variance (other codes), and decodes <paramref name="steps"/> points for each of the top <paramref name="dims"/>
    /// around the code of image <paramref name="baseImage"/>. Images: (dims · steps, C, s, s) on the CPU, row by row.
    /// </summary>
    public static Traversal Run(TrainedModel trained, DecodedImages images, int dims, int steps, int baseImage = 0, int maxImages = 1024)
    {
        var model = trained.Model;
        int latent = model.Latent;
        if (dims < 1 || dims > latent) throw new BadInputException($"{Settings.Pictures.Dims} must be between 1 and the latent size {latent} (got {dims}).");
        if (steps < 2) throw new BadInputException($"{Settings.Pictures.TraversalSteps} must be at least 2 (got {steps}).");
        trained.Require(Models.ModelOperation.Traverse);
        if (images.Count < 2) throw new BadInputException($"A traversal needs at least 2 images to measure the codes' spread; the data has {images.Count}.");
        if (baseImage < 0 || baseImage >= images.Count) throw new BadInputException($"{Settings.Pictures.Image} must be in [0, {images.Count - 1}] (got {baseImage}).");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        int n = Math.Min(images.Count, maxImages);
        var mus = new List<Tensor>();
        var kls = new List<Tensor>();
        for (int start = 0; start < n; start += 256)
        {
            var x = DecodedImages.ToModelInput(images.Pixels.narrow(0, start, Math.Min(256, n - start)), trained.Device);
            var posterior = model.Encode(x);
            mus.Add(posterior.Mode.to_type(ScalarType.Float64).cpu());
            if (posterior is Models.GaussianPosterior gaussian) kls.Add(gaussian.KlPerDimension().sum([0]).to_type(ScalarType.Float64).cpu());
        }
        var codes = cat(mus, 0);                                                      // (N, z)
        var std = codes.std(0, unbiased: true);                                       // (z)
        var score = kls.Count > 0 ? stack(kls).sum([0]) / n : std.square();          // (z) mean KL, or variance
        var order = score.argsort(descending: true).narrow(0, 0, dims);               // (K)

        var baseCode = DecodedImages.ToModelInput(images.Pixels.narrow(0, baseImage, 1), trained.Device);
        var center = model.Encode(baseCode).Mode.to_type(ScalarType.Float64).cpu();    // (1, z)
        var offsets = linspace(-3, 3, steps, dtype: ScalarType.Float64);              // (T)
        var grid = center.repeat(dims * steps, 1).view(dims, steps, latent);          // (K, T, z)
        var picked = order.data<long>().ToArray();
        for (int row = 0; row < dims; row++)
        {
            long d = picked[row];
            grid[row, .., d] = center[0, d] + offsets * std[d];
        }
        var decoded = model.Decode(grid.view(dims * steps, latent).to_type(ScalarType.Float32).to(trained.Device)).cpu();
        return new Traversal(picked.Select(d => (int)d).ToArray(), picked.Select(d => score[d].item<double>()).ToArray(),
                             kls.Count > 0 ? "kl" : "variance", codes.mean([0]).data<double>().ToArray(), std.data<double>().ToArray(),
                             decoded.MoveToOuterDisposeScope());
    }
}
