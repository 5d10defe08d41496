"""The table of docs/sharp-decoders.md, from the eval JSON that bench/sharp-decoders-study.sh keeps.

usage: python3 bench/sharp-decoders-table.py STUDY_DIR [DOC]

Prints the table; with DOC, also replaces the lines between "<!-- study-table:begin -->" and "<!-- study-table:end -->"
in DOC with it, and those between "<!-- study-grids:begin -->" and "<!-- study-grids:end -->" with seed 0's grids side
by side, so the doc shows exactly what this script found.

One row per data set, preset, family and variant: the mean over seeds ± the sample standard deviation (n - 1), and
the seeds counted. Below each group of variants: the change of each number against the plain run (ratio of means),
with a verdict only where the gap is larger than the two spreads together.
"""
import contextlib
import glob
import io
import json
import math
import os
import re
import sys

NAME = re.compile(r"^(?P<data>[a-z]+)-(?P<preset>[a-z]+)-(?P<family>ae|vae|sigma-vae|vq-vae)-(?P<variant>plain|adv|adv-fm)-s(?P<seed>\d+)-(?P<prior>[a-z]+)\.json$")
VARIANTS = {"plain": "plain", "adv": "+ adversarial", "adv-fm": "+ adversarial + feature matching"}
DATA, PRESETS, FAMILIES = ["fm", "faces"], ["tiny", "small"], ["ae", "vae", "sigma-vae", "vq-vae"]


def rank(key):
    """Data set, preset, family (and variant) in the order the doc discusses them."""
    return (DATA.index(key[0]), PRESETS.index(key[1]), FAMILIES.index(key[2])) + ((list(VARIANTS).index(key[3]),) if len(key) > 3 else ())
COLUMNS = [  # (key, title, from which prior's file, format, lower is better)
    ("mse", "MSE", "standard", "{:.5f}", True),
    ("psnr", "PSNR dB", "standard", "{:.2f}", False),
    ("ssim", "SSIM", "standard", "{:.4f}", False),
    ("fd_reconstructions", "FD recon.", "standard", "{:.1f}", True),
    ("fd", "FD standard prior", "standard", "{:.1f}", True),
    ("fd", "FD fitted prior", "fitted", "{:.1f}", True),
]


def stats(values):
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return mean, sd


def main(study):
    runs = {}
    for path in sorted(glob.glob(os.path.join(study, "eval", "*.json"))):
        m = NAME.match(os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            report = json.load(f)
        key = (m["data"], m["preset"], m["family"], m["variant"])
        prior = "standard" if m["prior"] == "standard" else "fitted"
        runs.setdefault(key, {}).setdefault(int(m["seed"]), {})[prior] = report
    if not runs:
        sys.exit(f"no eval JSON under {study}/eval")

    floors = {}
    print("| data | preset | family | variant | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---|---|---|---|---:|" + "---:|" * len(COLUMNS))
    order = sorted(runs, key=rank)
    cells = {}
    for key in order:
        seeds = {s: r for s, r in runs[key].items() if "standard" in r and "fitted" in r}
        row = []
        for column, title, prior, fmt, _ in COLUMNS:
            values = [r[prior][column] for r in seeds.values()]
            mean, sd = stats(values) if values else (float("nan"), float("nan"))
            cells[(key, title)] = (mean, sd, len(values))
            row.append(fmt.format(mean) + ("" if math.isnan(sd) else " ± " + fmt.format(sd)))
        for r in seeds.values():
            floors[(key[0], key[1])] = r["standard"]["fd_floor"]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {VARIANTS[key[3]]} | {len(seeds)} | " + " | ".join(row) + " |")

    print()
    for (data, preset), floor in sorted(floors.items(), key=lambda item: (DATA.index(item[0][0]), PRESETS.index(item[0][1]))):
        print(f"FD floor ({data}, {preset}: real against real at the same N): {floor:.2f}.")
    print()
    print("Against the plain run of the same data, preset and family (ratio of means; a verdict only where the gap")
    print("exceeds the sum of the two standard deviations, else \"within spread\"):")
    print()
    print("| data | preset | family | variant | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---|---|---|---|" + "---:|" * len(COLUMNS))
    for key in order:
        if key[3] == "plain":
            continue
        base = key[:3] + ("plain",)
        if base not in runs:
            continue
        row = []
        for _, title, _, _, lower in COLUMNS:
            mean, sd, n = cells[(key, title)]
            base_mean, base_sd, base_n = cells[(base, title)]
            ratio = mean / base_mean if base_mean else float("nan")
            if n < 2 or base_n < 2:
                verdict = "one seed"
            elif abs(mean - base_mean) <= sd + base_sd:
                verdict = "within spread"
            else:
                verdict = "better" if (mean < base_mean) == lower else "worse"
            row.append(f"{ratio:.2f}× ({verdict})")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {VARIANTS[key[3]]} | " + " | ".join(row) + " |")


GRID = re.compile(r"^(?P<data>[a-z]+)-(?P<preset>[a-z]+)-(?P<family>ae|vae|sigma-vae|vq-vae)-(?P<variant>plain|adv|adv-fm)-s0-(?P<kind>reconstructions|gmm|autoregressive)\.png$")
PRIOR_TITLES = {"gmm": "samples, fitted GMM prior", "autoregressive": "samples, fitted autoregressive prior"}


def grids(study, doc):
    """Seed 0's grids, one table per data set, preset and family: a column per variant, a row per kind of picture."""
    found = {}
    for path in sorted(glob.glob(os.path.join(study, "grids", "*.png"))):
        m = GRID.match(os.path.basename(path))
        if m:
            key = (m["data"], m["preset"], m["family"])
            found.setdefault(key, {})[(m["variant"], m["kind"])] = os.path.relpath(path, os.path.dirname(os.path.abspath(doc)))
    for key in sorted(found, key=rank):
        pictures = found[key]
        variants = [v for v in VARIANTS if any(k[0] == v for k in pictures)]
        kinds = [k for k in ("reconstructions", "gmm", "autoregressive") if any(p[1] == k for p in pictures)]
        print(f"**{key[0]}, {key[1]}, {key[2]}** (seed 0, `last.ckpt`)")
        print()
        print("| | " + " | ".join(VARIANTS[v] for v in variants) + " |")
        print("|---|" + "---|" * len(variants))
        for kind in kinds:
            cells = [f"![{key[2]} {VARIANTS[v]}]({pictures[(v, kind)]})" if (v, kind) in pictures else "" for v in variants]
            print(f"| {PRIOR_TITLES.get(kind, kind)} | " + " | ".join(cells) + " |")
        print()


def splice(doc, block, text):
    with open(doc) as f:
        content = f.read()
    begin, end = f"<!-- {block}:begin -->", f"<!-- {block}:end -->"
    if begin not in content or end not in content:
        sys.exit(f"{doc} has no {begin} ... {end} block")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(doc + ".tmp", "w") as f:
        f.write(head + begin + "\n" + text + end + tail)
    os.replace(doc + ".tmp", doc)


if __name__ == "__main__":
    study = sys.argv[1] if len(sys.argv) > 1 else "docs/sharp-decoders"
    doc = sys.argv[2] if len(sys.argv) > 2 else None
    out, pictures = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out):
        main(study)
    with contextlib.redirect_stdout(pictures):
        grids(study, doc or "docs/sharp-decoders.md")
    sys.stdout.write(out.getvalue())
    if doc:
        splice(doc, "study-table", out.getvalue())
        splice(doc, "study-grids", pictures.getvalue())
