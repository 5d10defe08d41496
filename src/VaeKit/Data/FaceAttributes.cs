namespace VaeKit.Data;

/// <summary>
/// The class labels of one synthetic face (<see cref="SyntheticFaces.Attributes"/>): the drawing choices a viewer
/// names first. Each is an index into the matching <c>…Names</c> list. The faces feature network of the Fréchet
/// distance is trained to predict all five, so its features respond to exactly the variation the generator has.
/// </summary>
/// <param name="HairColour">Index into <see cref="HairColourNames"/> (the palette's doubled natural colours are one class each).</param>
/// <param name="HairCut">Index into <see cref="HairCutNames"/>: the shape of the hair behind the head.</param>
/// <param name="EyeColour">Index into <see cref="EyeColourNames"/>.</param>
/// <param name="SkinTone">Index into <see cref="SkinToneNames"/>, light to dark.</param>
/// <param name="Backdrop">Index into <see cref="BackdropNames"/>.</param>
public sealed record FaceAttributes(int HairColour, int HairCut, int EyeColour, int SkinTone, int Backdrop)
{
    /// <summary>The hair colour classes.</summary>
    public static IReadOnlyList<string> HairColourNames { get; } =
        ["black", "dark brown", "brown", "light brown", "blonde", "silver", "grey", "red", "orange", "pink", "purple", "blue", "light blue", "green", "teal"];

    /// <summary>The hair cut classes.</summary>
    public static IReadOnlyList<string> HairCutNames { get; } = ["short", "bob", "long", "twin tails"];

    /// <summary>The eye colour classes.</summary>
    public static IReadOnlyList<string> EyeColourNames { get; } =
        ["blue", "light blue", "green", "teal", "red", "amber", "brown", "violet", "pink", "grey"];

    /// <summary>The skin tone classes, light to dark.</summary>
    public static IReadOnlyList<string> SkinToneNames { get; } = ["porcelain", "fair", "light", "medium", "tan", "brown"];

    /// <summary>The backdrop classes.</summary>
    public static IReadOnlyList<string> BackdropNames { get; } = ["solid", "gradient", "split"];

    /// <summary>The five attributes in order with their class counts: the heads of the faces feature network.</summary>
    public static IReadOnlyList<(string Name, int Classes)> Heads { get; } =
    [
        ("hair_colour", HairColourNames.Count), ("hair_cut", HairCutNames.Count), ("eye_colour", EyeColourNames.Count),
        ("skin_tone", SkinToneNames.Count), ("backdrop", BackdropNames.Count),
    ];

    /// <summary>The labels in <see cref="Heads"/> order.</summary>
    public int[] Labels => [HairColour, HairCut, EyeColour, SkinTone, Backdrop];
}
