namespace VaeKit.Models;

/// <summary>
/// A number about the codes of a whole evaluated set that batch means of the objective's terms cannot give (e.g. a
/// VQ-VAE's codebook perplexity and dead codes over all images), from <see cref="VaeModel.CodeStatistics"/>;
/// <c>vae eval</c> prints it and writes it to eval.json.
/// </summary>
/// <param name="Name">Key, snake_case.</param>
/// <param name="Value">The number.</param>
/// <param name="Meaning">One line for the table.</param>
public sealed record CodeStatistic(string Name, double Value, string Meaning);
