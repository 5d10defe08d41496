using SkiaSharp;

namespace VaeKit.Data;

/// <summary>
/// VaeKit's built-in default dataset: an unbounded, deterministic set of coloured cartoon faces in the style of
/// cropped anime portraits (hair framing a face with large eyes, a small mouth, neck and shoulders at the bottom).
/// Every face shares one composition, so a small VAE can learn it quickly, while background, skin, head placement
/// and shape, hair colour and cut, eyes, mouth, blush and accessories vary independently.
/// </summary>
/// <remarks>
/// Faces are drawn with SkiaSharp on a supersampled raster and box-filtered down to the requested size. All random
/// choices come from a private SplitMix64 stream seeded by (seed, index) and are made in a size-independent design
/// space, so the same face appears at every size. The parameters use only IEEE arithmetic (no <see cref="Math"/>
/// transcendentals, whose results may change between runtimes); the rasterisation itself belongs to the Skia build,
/// so <see cref="Version"/> together with the SkiaSharp version identifies the pixels.
/// </remarks>
public static class SyntheticFaces
{
    /// <summary>Bump when the drawing changes: it is part of the decode-cache key.</summary>
    public const int Version = 1;

    /// <summary>Smallest supported output size in pixels.</summary>
    internal const int MinSize = 8;

    /// <summary>Largest supported output size in pixels.</summary>
    internal const int MaxSize = 256;

    // The face is designed on a 100×100 canvas; Render scales that onto the raster.
    private const float Design = 100f;

    // Skia's analytic antialiasing alone leaves eyes and hair tips blotchy at 32 px. Rendering at least this wide,
    // and at least twice the target, then averaging whole blocks gives clean edges at every size.
    private const int MinRaster = 128;

    /// <summary>
    /// Renders face number <paramref name="index"/> of the set seeded by <paramref name="seed"/> as
    /// <paramref name="size"/>×<paramref name="size"/> RGB bytes (row-major, 3 bytes per pixel, no alpha) into
    /// <paramref name="dest"/>. Deterministic in (seed, index, size) and thread-safe.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is outside 8..256.</exception>
    /// <exception cref="ArgumentException"><paramref name="dest"/> is not exactly size·size·3 bytes long.</exception>
    public static void Render(int seed, int index, int size, Span<byte> dest)
    {
        if (size is < MinSize or > MaxSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"size must be between {MinSize} and {MaxSize} pixels");
        if (dest.Length != size * size * 3)
            throw new ArgumentException($"dest must hold exactly {size}x{size}x3 = {size * size * 3} bytes, got {dest.Length}", nameof(dest));

        var rng = new Rng(seed, index);
        var face = new Face(ref rng);

        int factor = Math.Max(2, (MinRaster + size - 1) / size);
        int raster = size * factor;
        // Rgba8888 pins the byte order to R,G,B,A (the platform's native N32 is BGRA on little-endian). The
        // background paints every pixel opaquely, so premultiplied values equal straight RGB and alpha can be dropped.
        using var bitmap = new SKBitmap(new SKImageInfo(raster, raster, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Scale(raster / Design);
            face.Draw(canvas);
        }
        BoxDownsample(bitmap.GetPixelSpan(), raster, factor, dest);
    }

    /// <summary>
    /// The drawing choices behind face <paramref name="index"/> of the set seeded by <paramref name="seed"/>, as class
    /// labels (<see cref="FaceAttributes"/>): what the faces feature network of the Fréchet distance learns to predict.
    /// Costs the parameter draws of one face, no drawing; agrees with <see cref="Render"/> at every size.
    /// </summary>
    public static FaceAttributes Attributes(int seed, int index)
    {
        var rng = new Rng(seed, index);
        return new Face(ref rng).Attributes;
    }

    // An integer factor makes area averaging exact: every raster pixel lands in one output pixel with equal weight,
    // which is the ideal antialiasing filter for already-antialiased vector art and is deterministic by construction.
    private static void BoxDownsample(ReadOnlySpan<byte> rgba, int raster, int factor, Span<byte> rgb)
    {
        int size = raster / factor, stride = raster * 4, count = factor * factor;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int r = 0, g = 0, b = 0;
                for (int dy = 0; dy < factor; dy++)
                {
                    var row = rgba.Slice((y * factor + dy) * stride + x * factor * 4, factor * 4);
                    for (int i = 0; i < row.Length; i += 4)
                    {
                        r += row[i];
                        g += row[i + 1];
                        b += row[i + 2];
                    }
                }
                int o = (y * size + x) * 3;
                rgb[o] = (byte)((r + count / 2) / count);
                rgb[o + 1] = (byte)((g + count / 2) / count);
                rgb[o + 2] = (byte)((b + count / 2) / count);
            }
    }

    /// <summary>Drawing choices from a <see cref="SplitMix64"/> stream: fixed forever, unlike System.Random.</summary>
    private struct Rng
    {
        private SplitMix64 _stream;

        public Rng(int seed, int index) =>
            // Hashing the seed before adding the index keeps sets with neighbouring seeds unrelated.
            _stream = new SplitMix64(SplitMix64.Mix(SplitMix64.Mix((ulong)(uint)seed ^ 0xD1B54A32D192ED03UL) + (ulong)(uint)index));

        private ulong Next() => _stream.Next();

        /// <summary>Uniform in [0, 1) with 24 bits, exactly representable as a float.</summary>
        public float Float() => (Next() >> 40) * (1f / (1 << 24));

        public float Range(float lo, float hi) => lo + (hi - lo) * Float();

        public int Below(int n) => (int)((Next() >> 33) % (ulong)n);

        public bool Chance(float p) => Float() < p;
    }

    // Anime palettes: the common natural colours appear twice so that they dominate as in real fan art.
    private static readonly SKColor[] HairColours =
    [
        new(38, 34, 46), new(38, 34, 46),       // black
        new(84, 52, 36), new(84, 52, 36),       // dark brown
        new(140, 92, 56), new(140, 92, 56),     // brown
        new(196, 140, 84),                      // light brown
        new(244, 214, 120), new(244, 214, 120), // blonde
        new(226, 228, 236),                     // silver / platinum
        new(150, 150, 164),                     // grey
        new(196, 44, 48),                       // red
        new(236, 120, 52),                      // orange
        new(246, 156, 190),                     // pink
        new(150, 96, 200),                      // purple
        new(64, 96, 196),                       // blue
        new(120, 196, 236),                     // light blue
        new(76, 156, 104),                      // green
        new(60, 168, 168),                      // teal
    ];

    private static readonly SKColor[] SkinTones =
    [
        new(255, 234, 218), new(255, 234, 218), new(253, 224, 204), new(253, 224, 204),
        new(246, 212, 186), new(236, 196, 164), new(214, 166, 128), new(176, 124, 90),
    ];

    private static readonly SKColor[] EyeColours =
    [
        new(52, 104, 216), new(84, 170, 232), new(56, 160, 86), new(28, 140, 124), new(204, 40, 52),
        new(226, 150, 36), new(132, 76, 40), new(140, 68, 204), new(232, 86, 150), new(116, 128, 150),
    ];

    // Palette entry → attribute class: the doubled entries of a colour are one class.
    private static readonly int[] HairClass = [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    private static readonly int[] SkinClass = [0, 0, 1, 1, 2, 3, 4, 5];

    private static readonly SKColor White = new(255, 255, 255);
    private static readonly SKColor MouthDark = new(120, 32, 44);
    private static readonly SKColor Tongue = new(236, 116, 128);

    private enum Backdrop { Solid, Gradient, Split }

    private enum BackHair { Short, Bob, Long, TwinTails }

    private enum Mouth { Smile, Open, Neutral, Cat }

    private enum Accessory { None, Bow, Headband }

    /// <summary>
    /// The parameters of one face, sampled up front in a fixed order, and the drawing that uses them. Head-relative
    /// lengths are in design units with the origin at the head centre, so the face can be moved and tilted as a whole.
    /// </summary>
    private sealed class Face
    {
        private readonly Backdrop _backdrop;
        private readonly SKColor _bgA, _bgB;
        private readonly float _bgSplit, _bgSlope;

        private readonly float _cx, _cy, _tilt;
        private readonly float _r, _ry, _chin;                       // half width, half height to the chin, 0 round..1 pointed
        private readonly SKColor _skin, _skinShadow, _skinLine;

        private readonly SKColor _shirt;
        private readonly float _shoulderY, _neckW, _neckV;

        private readonly SKColor _hair, _hairBack, _hairLine, _hairShine;
        private readonly float _capRx, _capRy, _capCy;               // the skull-covering ellipse all hair grows from
        private readonly BackHair _back;
        private readonly float _backBottom, _tailLen, _tailSpread;
        private readonly int _strands;
        private readonly float[] _tipJitter;
        private readonly float _fringeY, _depth, _part, _sweep, _blunt;
        private readonly float _lockL, _lockR, _lockX;               // side-lock tip heights and distance from the centre line
        private readonly bool _shine;
        private readonly float _ahoge;                               // the stray strand on top: 0 none, else its lean

        private readonly float _eyeY, _eyeDx, _eyeA, _eyeB, _eyeTilt, _look, _irisA, _irisB;
        private readonly SKColor _iris, _irisDark, _irisLight, _lash;
        private readonly bool _brows;

        private readonly bool _nose;
        private readonly Mouth _mouth;
        private readonly float _mouthY, _mouthW, _mouthOpen;
        private readonly SKColor _mouthLine;
        private readonly bool _blush;
        private readonly SKColor _blushColour;

        private readonly Accessory _accessory;
        private readonly SKColor _accent;
        private readonly int _accessorySide;

        /// <summary>Palette entries drawn for the skin, hair and eyes (before jitter), for <see cref="Attributes"/>.</summary>
        public readonly int SkinIndex, HairIndex, EyeIndex;

        public FaceAttributes Attributes => new(HairClass[HairIndex], (int)_back, EyeIndex, SkinClass[SkinIndex], (int)_backdrop);

        public Face(ref Rng rng)
        {
            // Backdrop: a flat, graded or two-tone colour, mostly desaturated so the figure stands out.
            float hue = rng.Float();
            _bgA = Hsv(hue, rng.Range(0.08f, 0.55f), rng.Range(0.55f, 1f));
            _backdrop = (Backdrop)rng.Below(3);
            _bgB = rng.Chance(0.6f)
                ? Hsv(hue + rng.Range(-0.12f, 0.12f), rng.Range(0.08f, 0.6f), rng.Range(0.45f, 1f))
                : Hsv(rng.Float(), rng.Range(0.08f, 0.6f), rng.Range(0.45f, 1f));
            _bgSplit = rng.Range(30f, 70f);
            _bgSlope = rng.Range(-0.7f, 0.7f);

            // Head: hair top to chin spans about 2.35 r, so r in 23..30 fills 55..70 % of the height, hair width more.
            _r = rng.Range(23f, 30f);
            _ry = _r * rng.Range(1.0f, 1.15f);
            _chin = rng.Float();
            _cx = 50f + rng.Range(-6f, 6f);
            _cy = 52f + rng.Range(-4f, 4f);
            _tilt = rng.Range(-7f, 7f);
            SkinIndex = rng.Below(SkinTones.Length);
            _skin = Jitter(SkinTones[SkinIndex], ref rng, 0.03f);
            _skinShadow = Mix(Shade(_skin, 0.86f), new SKColor(220, 120, 130), 0.12f);
            _skinLine = Mix(Shade(_skin, 0.62f), new SKColor(120, 50, 50), 0.25f);

            _shirt = Hsv(rng.Float(), rng.Range(0.15f, 0.8f), rng.Range(0.3f, 0.95f));
            _shoulderY = _ry + _r * rng.Range(0.2f, 0.35f);
            _neckW = _r * rng.Range(0.26f, 0.34f);
            _neckV = _r * rng.Range(0.1f, 0.45f);

            HairIndex = rng.Below(HairColours.Length);
            _hair = Jitter(HairColours[HairIndex], ref rng, 0.06f);
            _hairBack = Shade(_hair, 0.74f);
            _hairLine = Shade(_hair, 0.48f);
            _hairShine = Mix(_hair, White, 0.45f);
            _capRx = _r * rng.Range(1.08f, 1.2f);
            _capRy = _r * rng.Range(1.1f, 1.22f);
            _capCy = -_r * rng.Range(0.04f, 0.12f);
            _back = (BackHair)rng.Below(4);
            _backBottom = _back switch
            {
                BackHair.Short => _r * rng.Range(0.05f, 0.35f),
                BackHair.Bob => _ry * rng.Range(0.6f, 1.0f),
                BackHair.Long => _ry + _r * rng.Range(0.5f, 1.6f),
                _ => _r * rng.Range(0.2f, 0.5f),
            };
            _tailLen = _ry + _r * rng.Range(0.3f, 1.0f);
            _tailSpread = _r * rng.Range(0.25f, 0.6f);

            // Eyes sit in the upper middle of the face; the fringe ends a little above them.
            _eyeY = _r * rng.Range(0.1f, 0.24f);
            _eyeA = _r * rng.Range(0.16f, 0.22f);
            _eyeB = _eyeA * rng.Range(1.1f, 1.45f);
            _eyeDx = _r * rng.Range(0.38f, 0.5f);
            _eyeTilt = rng.Range(-10f, 12f);
            _look = rng.Range(-1f, 1f);
            _irisA = _eyeA * rng.Range(0.62f, 0.8f);
            _irisB = _eyeB * rng.Range(0.75f, 0.9f);
            EyeIndex = rng.Below(EyeColours.Length);
            _iris = Jitter(EyeColours[EyeIndex], ref rng, 0.08f);
            _irisDark = Shade(_iris, 0.4f);
            _irisLight = Mix(_iris, White, 0.35f);
            _lash = Mix(_hairLine, new SKColor(36, 22, 28), 0.7f);
            _brows = rng.Chance(0.7f);

            _strands = 3 + rng.Below(3);
            _tipJitter = new float[_strands];
            for (int i = 0; i < _strands; i++) _tipJitter[i] = rng.Range(-1f, 1f);
            _fringeY = _eyeY - _eyeB * rng.Range(0.9f, 1.6f);
            _blunt = rng.Chance(0.3f) ? rng.Range(0.4f, 0.8f) : rng.Range(0f, 0.15f);
            _depth = _r * (_blunt > 0.3f ? rng.Range(0.06f, 0.15f) : rng.Range(0.22f, 0.45f));
            _part = rng.Chance(0.3f) ? rng.Range(0.4f, 1f) : 0f;
            _sweep = rng.Chance(0.4f) ? rng.Range(-1f, 1f) : rng.Range(-0.2f, 0.2f);
            if (_back != BackHair.Short && rng.Chance(0.75f))
            {
                // Long side locks, usually symmetric.
                _lockL = _r * rng.Range(0.5f, 1.05f);
                _lockR = rng.Chance(0.7f) ? _lockL : _r * rng.Range(0.5f, 1.05f);
            }
            else
                _lockL = _lockR = _fringeY + _r * rng.Range(0.15f, 0.35f);   // just sideburns
            _lockX = _r * rng.Range(0.74f, 0.9f);
            _shine = rng.Chance(0.7f);
            _ahoge = rng.Chance(0.2f) ? (rng.Chance(0.5f) ? -1 : 1) * rng.Range(0.5f, 1f) : 0f;

            _nose = rng.Chance(0.65f);
            _mouth = (Mouth)rng.Below(4);
            _mouthY = _eyeY + (_ry - _eyeY) * rng.Range(0.52f, 0.64f);
            _mouthW = _r * rng.Range(0.1f, 0.19f);
            _mouthOpen = rng.Range(0.6f, 1.3f);
            _mouthLine = Mix(_skin, new SKColor(110, 30, 36), 0.75f);
            _blush = rng.Chance(0.45f);
            _blushColour = new SKColor(255, 105, 125, (byte)rng.Range(70f, 120f));

            _accessory = rng.Chance(0.7f) ? Accessory.None : rng.Chance(0.5f) ? Accessory.Bow : Accessory.Headband;
            _accent = Hsv(rng.Float(), rng.Range(0.5f, 0.9f), rng.Range(0.7f, 1f));
            _accessorySide = rng.Chance(0.5f) ? -1 : 1;
        }

        private SKRect CapOval => new(-_capRx, _capCy - _capRy, _capRx, _capCy + _capRy);

        public void Draw(SKCanvas c)
        {
            using var paint = new SKPaint { IsAntialias = true };
            DrawBackdrop(c, paint);

            c.Save();
            c.Translate(_cx, _cy);
            c.RotateDegrees(_tilt);

            DrawClothes(c, paint);
            using (var back = BackHairPath())
            {
                Fill(c, paint, back, _hairBack);
                Stroke(c, paint, back, _hairLine, 0.6f);
            }
            DrawNeck(c, paint);

            using var face = FacePath();
            using var fringe = FringePath();
            Fill(c, paint, face, _skin);
            Stroke(c, paint, face, _skinLine, 0.6f);

            // Cel shadow the fringe casts on the forehead: the fringe shape moved down, kept inside the face.
            c.Save();
            c.ClipPath(face, SKClipOperation.Intersect, true);
            c.Translate(0, _r * 0.08f);
            Fill(c, paint, fringe, _skinShadow);
            c.Restore();

            if (_blush)
                for (int s = -1; s <= 1; s += 2)
                {
                    paint.Style = SKPaintStyle.Fill;
                    paint.Color = _blushColour;
                    c.DrawOval(s * (_eyeDx + _eyeA * 0.15f), _eyeY + _eyeB * 1.4f, _eyeA * 0.95f, _eyeA * 0.42f, paint);
                }
            DrawBrows(c, paint);
            DrawEye(c, paint, -1);
            DrawEye(c, paint, 1);
            DrawNoseAndMouth(c, paint);

            // The fringe goes last so its tips overlap brows and, when long, the tops of the eyes.
            if (_ahoge != 0)
                using (var strand = AhogePath())
                {
                    Fill(c, paint, strand, _hair);
                    Stroke(c, paint, strand, _hairLine, 0.6f);
                }
            Fill(c, paint, fringe, _hair);
            if (_shine)
            {
                c.Save();
                c.ClipPath(fringe, SKClipOperation.Intersect, true);
                var ring = CapOval;
                ring.Inflate(-_capRx * 0.2f, -_capRy * 0.2f);
                using var arc = new SKPath();
                arc.AddArc(ring, 205, 130);
                // Broken into short glints so it reads as sheen rather than as a headband.
                using var glints = SKPathEffect.CreateDash([_r * 0.4f, _r * 0.12f], _r * 0.2f);
                paint.PathEffect = glints;
                paint.StrokeCap = SKStrokeCap.Round;
                Stroke(c, paint, arc, _hairShine.WithAlpha(130), _r * 0.13f);
                paint.StrokeCap = SKStrokeCap.Butt;
                paint.PathEffect = null;
                c.Restore();
            }
            Stroke(c, paint, fringe, _hairLine, 0.6f);
            DrawAccessory(c, paint);
            c.Restore();
        }

        private void DrawBackdrop(SKCanvas c, SKPaint paint)
        {
            c.DrawColor(_bgA);
            switch (_backdrop)
            {
                case Backdrop.Gradient:
                    using (var shader = SKShader.CreateLinearGradient(
                        new SKPoint(0, 0), new SKPoint(0, Design), [_bgA, _bgB], SKShaderTileMode.Clamp))
                    {
                        paint.Shader = shader;
                        c.DrawRect(0, 0, Design, Design, paint);
                        paint.Shader = null;
                    }
                    break;
                case Backdrop.Split:
                    using (var lower = new SKPath())
                    {
                        lower.MoveTo(0, _bgSplit - _bgSlope * 50f);
                        lower.LineTo(Design, _bgSplit + _bgSlope * 50f);
                        lower.LineTo(Design, Design);
                        lower.LineTo(0, Design);
                        lower.Close();
                        Fill(c, paint, lower, _bgB);
                    }
                    break;
            }
        }

        private void DrawClothes(SKCanvas c, SKPaint paint)
        {
            float y = _shoulderY, w = _r * 2.4f;
            using var shirt = new SKPath();
            shirt.MoveTo(-w, 140);
            shirt.LineTo(-w, y + _r * 0.6f);
            shirt.QuadTo(-w * 0.8f, y, -_r * 0.6f, y);
            shirt.LineTo(_r * 0.6f, y);
            shirt.QuadTo(w * 0.8f, y, w, y + _r * 0.6f);
            shirt.LineTo(w, 140);
            shirt.Close();
            Fill(c, paint, shirt, _shirt);
            Stroke(c, paint, shirt, Shade(_shirt, 0.6f), 0.6f);
        }

        private void DrawNeck(SKCanvas c, SKPaint paint)
        {
            using var neck = new SKPath();
            float w = _neckW, y = _shoulderY;
            neck.MoveTo(-w, _ry * 0.3f);
            neck.LineTo(w, _ry * 0.3f);
            // The neck flares into the shoulders and ends in a neckline, from a shallow scoop to a deep V.
            neck.LineTo(w, y - _r * 0.12f);
            neck.QuadTo(w, y, w * 1.8f, y);
            neck.QuadTo(0, y + _neckV * 2, -w * 1.8f, y);
            neck.QuadTo(-w, y, -w, y - _r * 0.12f);
            neck.Close();
            Fill(c, paint, neck, _skinShadow);
            Stroke(c, paint, neck, _skinLine, 0.5f);
        }

        private SKPath FacePath()
        {
            float r = _r, ry = _ry;
            float k = 0.55f + 0.2f * _chin;   // where the jaw starts turning in: lower gives fuller cheeks
            float w = 0.55f - 0.38f * _chin;  // chin control width: smaller gives a pointier chin
            var p = new SKPath();
            p.MoveTo(-r, 0);
            p.ArcTo(new SKRect(-r, -r, r, r), 180, 180, false);
            p.CubicTo(r, ry * k, r * w, ry, 0, ry);
            p.CubicTo(-r * w, ry, -r, ry * k, -r, 0);
            p.Close();
            return p;
        }

        private SKPath BackHairPath()
        {
            var p = new SKPath();
            if (_back == BackHair.TwinTails)
                for (int s = -1; s <= 1; s += 2)
                {
                    float rootX = s * _capRx * 0.8f, rootY = _capCy - _capRy * 0.35f;
                    float tipX = s * (_capRx + _tailSpread), tipY = _tailLen;
                    p.MoveTo(rootX, rootY);
                    p.CubicTo(s * (_capRx + _r * 0.8f), rootY - _r * 0.2f, tipX + s * _r * 0.45f, tipY - _r * 0.7f, tipX, tipY);
                    p.CubicTo(tipX - s * _r * 0.15f, tipY - _r * 0.6f, s * _capRx * 0.95f, rootY + _r * 0.7f, s * _capRx * 0.7f, rootY + _r * 0.4f);
                    p.Close();
                }

            float rx = _capRx, top = _capCy, bottom = Math.Max(_backBottom, top + _r * 0.1f);
            float flare = _back switch { BackHair.Long => 1.22f, BackHair.Bob => 1.06f, _ => 1f };
            float x = rx * flare;
            p.MoveTo(-rx, top);
            p.ArcTo(CapOval, 180, 180, false);
            if (_back == BackHair.Long)
            {
                // Long hair ends in a few pointed locks.
                p.LineTo(x, bottom);
                const int locks = 5;
                for (int i = 1; i <= locks; i++)
                {
                    float xi = x - 2 * x * i / locks;
                    p.LineTo(xi + x / locks, bottom - (i % 2 == 1 ? _r * 0.25f : 0) + _r * 0.12f);
                    p.LineTo(xi, bottom);
                }
            }
            else
            {
                float corner = Math.Min(_r * 0.3f, (bottom - top) * 0.5f);
                p.LineTo(x, bottom - corner);
                p.QuadTo(x, bottom, x - corner, bottom);
                p.LineTo(-x + corner, bottom);
                p.QuadTo(-x, bottom, -x, bottom - corner);
            }
            p.Close();
            return p;
        }

        /// <summary>A single curved strand springing up from the crown, a staple of anime hair.</summary>
        private SKPath AhogePath()
        {
            float top = _capCy - _capRy, x = _ahoge * _r * 0.15f, h = _r * 0.45f, w = _r * 0.09f;
            var p = new SKPath();
            p.MoveTo(x - w, top + w * 2);
            p.QuadTo(x - w, top - h * 0.6f, x + _ahoge * h * 0.8f, top - h);
            p.QuadTo(x + w * 0.5f, top - h * 0.5f, x + w, top + w * 2);
            p.Close();
            return p;
        }

        private float RootY(float x, float fx) =>
            _fringeY - _depth - _part * (1 - Math.Abs(x) / fx) * _r * 0.3f;

        /// <summary>The front hair: the crown, a fringe of strands across the forehead and a lock down each side.</summary>
        private SKPath FringePath()
        {
            float r = _r, rx = _capRx, fx = r * 0.62f;
            var p = new SKPath();
            p.MoveTo(rx, _capCy);
            p.ArcTo(CapOval, 0, -180, false);

            float rootL = RootY(-fx, fx);
            // Left lock: outer edge down to the tip, inner edge back up to where the fringe starts.
            p.CubicTo(-rx * 1.02f, Lerp(_capCy, _lockL, 0.55f), -_lockX - r * 0.08f, _lockL - r * 0.15f, -_lockX, _lockL);
            p.CubicTo(-_lockX + r * 0.06f, _lockL - r * 0.25f, -fx - r * 0.05f, Lerp(rootL, _lockL, 0.35f), -fx, rootL);

            float seg = 2 * fx / _strands;
            for (int i = 0; i < _strands; i++)
            {
                float b0 = -fx + seg * i, b1 = b0 + seg;
                float y0 = RootY(b0, fx), y1 = RootY(b1, fx);
                float tx = (b0 + b1) / 2 + _sweep * seg * 0.45f;
                float ty = _fringeY + _tipJitter[i] * r * 0.1f - _part * (1 - Math.Abs(tx) / fx) * r * 0.3f
                           + Math.Abs(tx) / fx * r * 0.06f;
                float half = seg * _blunt * 0.5f;
                p.QuadTo(b0 + (tx - b0) * 0.15f, Lerp(y0, ty, 0.75f), tx - half, ty);
                if (half > 0) p.QuadTo(tx, ty + half * 0.3f, tx + half, ty);
                p.QuadTo(b1 - (b1 - tx) * 0.15f, Lerp(y1, ty, 0.75f), b1, y1);
            }

            float rootR = RootY(fx, fx);
            p.CubicTo(fx + r * 0.05f, Lerp(rootR, _lockR, 0.35f), _lockX - r * 0.06f, _lockR - r * 0.25f, _lockX, _lockR);
            p.CubicTo(_lockX + r * 0.08f, _lockR - r * 0.15f, rx * 1.02f, Lerp(_capCy, _lockR, 0.55f), rx, _capCy);
            p.Close();
            return p;
        }

        private void DrawBrows(SKCanvas c, SKPaint paint)
        {
            if (!_brows) return;
            for (int s = -1; s <= 1; s += 2)
            {
                using var brow = new SKPath();
                float x = s * _eyeDx, y = _eyeY - _eyeB * 1.55f;
                brow.MoveTo(x - s * _eyeA * 0.8f, y + _eyeB * 0.1f);
                brow.QuadTo(x, y - _eyeB * 0.2f, x + s * _eyeA * 0.9f, y + _eyeB * 0.15f);
                Stroke(c, paint, brow, _hairLine, 0.9f);
            }
        }

        /// <summary>
        /// An anime eye: white, a graded iris with pupil and highlights, a heavy upper lash line. <paramref name="side"/>
        /// is -1 for the eye on the left of the image and +1 for the right; the outer corner is on that side.
        /// </summary>
        private void DrawEye(SKCanvas c, SKPaint paint, int side)
        {
            float a = _eyeA, b = _eyeB;
            c.Save();
            c.Translate(side * _eyeDx, _eyeY);
            c.RotateDegrees(-side * _eyeTilt);   // positive tilt lifts the outer corners

            paint.Style = SKPaintStyle.Fill;
            paint.Color = White;
            c.DrawOval(0, 0, a, b, paint);

            c.Save();
            using (var white = new SKPath())
            {
                white.AddOval(new SKRect(-a, -b, a, b));
                c.ClipPath(white, SKClipOperation.Intersect, true);
            }
            float ix = _look * a * 0.2f, iy = b * 0.12f;
            using (var shader = SKShader.CreateLinearGradient(
                new SKPoint(0, iy - _irisB), new SKPoint(0, iy + _irisB), [_irisDark, _iris, _irisLight], SKShaderTileMode.Clamp))
            {
                paint.Shader = shader;
                c.DrawOval(ix, iy, _irisA, _irisB, paint);
                paint.Shader = null;
            }
            paint.Color = Shade(_iris, 0.22f);
            c.DrawOval(ix, iy + _irisB * 0.05f, _irisA * 0.45f, _irisB * 0.5f, paint);
            paint.Color = White;
            c.DrawCircle(ix - _irisA * 0.35f, iy - _irisB * 0.4f, a * 0.28f, paint);
            c.DrawCircle(ix + _irisA * 0.35f, iy + _irisB * 0.45f, a * 0.13f, paint);
            c.Restore();

            using (var lash = new SKPath())
            {
                lash.AddArc(new SKRect(-a * 1.05f, -b * 1.02f, a * 1.05f, b * 1.02f), 195, 150);
                paint.StrokeCap = SKStrokeCap.Round;
                Stroke(c, paint, lash, _lash, b * 0.26f);
                paint.StrokeCap = SKStrokeCap.Butt;
            }
            using (var flick = new SKPath())
            {
                flick.MoveTo(side * a * 0.85f, -b * 0.45f);
                flick.LineTo(side * a * 1.4f, -b * 0.62f);
                flick.LineTo(side * a * 1.02f, -b * 0.1f);
                flick.Close();
                Fill(c, paint, flick, _lash);
            }
            using (var lower = new SKPath())
            {
                lower.AddArc(new SKRect(-a * 0.95f, -b, a * 0.95f, b * 1.02f), 55, 70);
                Stroke(c, paint, lower, _lash.WithAlpha(150), 0.5f);
            }
            c.Restore();
        }

        private void DrawNoseAndMouth(SKCanvas c, SKPaint paint)
        {
            if (_nose)
            {
                float ny = _eyeY + (_mouthY - _eyeY) * 0.55f;
                using var nose = new SKPath();
                nose.MoveTo(_r * 0.01f, ny - _r * 0.04f);
                nose.LineTo(-_r * 0.02f, ny + _r * 0.03f);
                Stroke(c, paint, nose, _skinLine, 0.7f);
            }

            float w = _mouthW, y = _mouthY;
            using var mouth = new SKPath();
            switch (_mouth)
            {
                case Mouth.Smile:
                    mouth.MoveTo(-w, y);
                    mouth.QuadTo(0, y + w * 0.8f, w, y);
                    Stroke(c, paint, mouth, _mouthLine, 0.9f);
                    break;
                case Mouth.Neutral:
                    mouth.MoveTo(-w * 0.55f, y);
                    mouth.QuadTo(0, y + w * 0.15f, w * 0.55f, y);
                    Stroke(c, paint, mouth, _mouthLine, 0.9f);
                    break;
                case Mouth.Cat:
                    mouth.MoveTo(-w, y - w * 0.1f);
                    mouth.QuadTo(-w * 0.5f, y + w * 0.6f, 0, y);
                    mouth.QuadTo(w * 0.5f, y + w * 0.6f, w, y - w * 0.1f);
                    Stroke(c, paint, mouth, _mouthLine, 0.9f);
                    break;
                case Mouth.Open:
                    // A "D" shape: nearly flat top, round bottom, with the tongue showing.
                    float h = w * _mouthOpen;
                    mouth.MoveTo(-w, y);
                    mouth.QuadTo(0, y + h * 0.15f, w, y);
                    mouth.CubicTo(w * 0.8f, y + h * 1.3f, -w * 0.8f, y + h * 1.3f, -w, y);
                    mouth.Close();
                    Fill(c, paint, mouth, MouthDark);
                    c.Save();
                    c.ClipPath(mouth, SKClipOperation.Intersect, true);
                    paint.Color = Tongue;
                    c.DrawOval(0, y + h * 0.95f, w * 0.6f, h * 0.42f, paint);
                    c.Restore();
                    Stroke(c, paint, mouth, _mouthLine, 0.6f);
                    break;
            }
        }

        private void DrawAccessory(SKCanvas c, SKPaint paint)
        {
            if (_back == BackHair.TwinTails)
                for (int s = -1; s <= 1; s += 2)
                {
                    paint.Style = SKPaintStyle.Fill;
                    paint.Color = _accent;
                    c.DrawCircle(s * _capRx * 0.98f, _capCy - _capRy * 0.3f, _r * 0.1f, paint);
                }
            switch (_accessory)
            {
                case Accessory.Bow:
                    {
                        float x = _accessorySide * _capRx * 0.62f, y = _capCy - _capRy * 0.72f, s = _r * 0.2f;
                        using var bow = new SKPath();
                        bow.MoveTo(x, y);
                        bow.LineTo(x - s * 1.3f, y - s * 0.8f);
                        bow.LineTo(x - s * 1.3f, y + s * 0.8f);
                        bow.Close();
                        bow.MoveTo(x, y);
                        bow.LineTo(x + s * 1.3f, y - s * 0.8f);
                        bow.LineTo(x + s * 1.3f, y + s * 0.8f);
                        bow.Close();
                        Fill(c, paint, bow, _accent);
                        Stroke(c, paint, bow, Shade(_accent, 0.55f), 0.6f);
                        paint.Style = SKPaintStyle.Fill;
                        paint.Color = Shade(_accent, 0.8f);
                        c.DrawCircle(x, y, s * 0.35f, paint);
                        break;
                    }
                case Accessory.Headband:
                    {
                        var band = CapOval;
                        band.Inflate(-_capRx * 0.06f, -_capRy * 0.06f);
                        band.Offset(0, _capRy * 0.04f);
                        using var arc = new SKPath();
                        arc.AddArc(band, 200, 140);
                        Stroke(c, paint, arc, _accent, _r * 0.11f);
                        break;
                    }
            }
        }

        private static void Fill(SKCanvas c, SKPaint paint, SKPath path, SKColor colour)
        {
            paint.Style = SKPaintStyle.Fill;
            paint.Color = colour;
            c.DrawPath(path, paint);
        }

        private static void Stroke(SKCanvas c, SKPaint paint, SKPath path, SKColor colour, float width)
        {
            paint.Style = SKPaintStyle.Stroke;
            paint.StrokeWidth = width;
            paint.Color = colour;
            c.DrawPath(path, paint);
        }
    }

    private static float Lerp(float a, float b, float t) => a + (b - a) * t;

    private static byte ToByte(float v) => (byte)Math.Clamp((int)(v + 0.5f), 0, 255);

    private static SKColor Shade(SKColor c, float f) => new(ToByte(c.Red * f), ToByte(c.Green * f), ToByte(c.Blue * f), c.Alpha);

    private static SKColor Mix(SKColor a, SKColor b, float t) =>
        new(ToByte(Lerp(a.Red, b.Red, t)), ToByte(Lerp(a.Green, b.Green, t)), ToByte(Lerp(a.Blue, b.Blue, t)));

    /// <summary>Scales each channel independently by up to ±<paramref name="amount"/>, so palette entries vary in tint.</summary>
    private static SKColor Jitter(SKColor c, ref Rng rng, float amount)
    {
        float r = c.Red * rng.Range(1 - amount, 1 + amount);
        float g = c.Green * rng.Range(1 - amount, 1 + amount);
        float b = c.Blue * rng.Range(1 - amount, 1 + amount);
        return new SKColor(ToByte(r), ToByte(g), ToByte(b));
    }

    /// <summary>HSV to RGB with hue in turns (wrapped), saturation and value in [0, 1].</summary>
    private static SKColor Hsv(float h, float s, float v)
    {
        h = (h - MathF.Floor(h)) * 6f;
        int sector = Math.Min((int)h, 5);
        float f = h - sector, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
        var (r, g, b) = sector switch
        {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        return new SKColor(ToByte(r * 255), ToByte(g * 255), ToByte(b * 255));
    }
}
