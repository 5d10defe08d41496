#!/usr/bin/env bash
# What the discriminator costs per training step: `vae bench` alternated with and without it, PAIRS times, and the
# median ratio of step times (a ratio within one run of this script, so machine load cancels as far as it can).
#
#   bash bench/adversarial-cost.sh            # tiny preset, batch 64, 2 threads, discriminator widths 64 (default) and 32
#
# Environment: VAE (default: the Release build in this checkout), PRESET (tiny), PAIRS (5), STEPS (30), THREADS (2),
# WIDTHS ("64 32").
set -euo pipefail
cd "$(dirname "$0")/.."
VAE=${VAE:-"dotnet src/VaeKit.Cli/bin/Release/net10.0/vae.dll"}
PRESET=${PRESET:-tiny}; PAIRS=${PAIRS:-5}; STEPS=${STEPS:-30}; THREADS=${THREADS:-2}; WIDTHS=${WIDTHS:-64 32}
bench() { $VAE bench --preset "$PRESET" --device cpu --batch 64 --steps "$STEPS" --warmup 3 --threads "$THREADS" --json "$@"; }
ms() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["step_ms"], d["discriminator_parameters"])'; }
out=$(mktemp)
for width in $WIDTHS; do
  for variant in "adv|--adversarial-weight 0.5" "adv-fm|--adversarial-weight 0.5 --feature-matching-weight 0.05"; do
    name=${variant%%|*}; flags=${variant#*|}
    for ((i = 0; i < PAIRS; i++)); do
      read -r plain _ < <(bench | ms)
      # shellcheck disable=SC2086
      read -r with params < <(bench $flags --disc-width "$width" | ms)
      echo "$width $name $params $plain $with" >> "$out"
    done
  done
done
python3 - "$out" "$PRESET" "$PAIRS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"| preset | discriminator | terms | plain step ms (median) | with it (median) | ratio, median (min–max) of {sys.argv[3]} pairs |")
print("|---|---|---|---:|---:|---:|")
for key in dict.fromkeys((r[0], r[1], r[2]) for r in rows):
    sel = [r for r in rows if (r[0], r[1], r[2]) == key]
    plain = [float(r[3]) for r in sel]; with_ = [float(r[4]) for r in sel]
    ratios = [w / p for p, w in zip(plain, with_)]
    terms = "adversarial" if key[1] == "adv" else "adversarial + feature matching"
    print(f"| {sys.argv[2]} | width {key[0]}, {int(key[2]):,} parameters | {terms} | {statistics.median(plain):.0f} | "
          f"{statistics.median(with_):.0f} | {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) |")
PY
rm -f "$out"
