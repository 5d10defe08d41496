#!/usr/bin/env bash
# The sharp-decoders study (docs/sharp-decoders.md): the same runs with and without the adversarial term (and with
# feature matching), at the same step budget and seeds, measured by `vae eval` (MSE, PSNR, SSIM, FD of the
# reconstructions, FD of samples under the standard and the fitted prior), with grids for the doc.
#
#   bash bench/sharp-decoders-study.sh [STEP...]     STEP: train, priors, eval, grids, table (default: each run
#                                                    trained, fitted, evaluated and drawn in turn, then the table)
#
# Environment (space-separated lists): DATA (fm faces; default: fm), PRESETS (tiny small; default: tiny), FAMILIES
# (ae vae sigma-vae vq-vae; default: vae), VARIANTS (plain adv adv-fm; default: all three), SEEDS (default: 0 1 2),
# STEPS (optimizer steps per run; default 1000), START (--adversarial-start; default 250), VAE (the command; default:
# the Release build in this checkout), STUDY (output folder; default docs/sharp-decoders), THREADS (default 2).
# Every step skips what is complete, so the script continues after an interruption; a failing command fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
VAE=${VAE:-"dotnet src/VaeKit.Cli/bin/Release/net10.0/vae.dll"}
STUDY=${STUDY:-docs/sharp-decoders}
RUNS=${RUNS:-study/sharp-runs}            # the runs themselves are large: outside docs/, not committed
THREADS=${THREADS:-2}
read -r -a DATA <<< "${DATA:-fm}"
read -r -a PRESETS <<< "${PRESETS:-tiny}"
read -r -a FAMILIES <<< "${FAMILIES:-vae}"
read -r -a VARIANTS <<< "${VARIANTS:-plain adv adv-fm}"
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
STEPS=${STEPS:-1000}
START=${START:-250}
mkdir -p "$RUNS" "$STUDY/eval" "$STUDY/grids"

data_flags() {
  case "$1" in
    fm) echo "--data fashion-mnist" ;;                                   # evaluated on the 10,000 test images
    faces) echo "--data synthetic:12000 --val-fraction 0.25" ;;          # 9,000 to train, 3,000 to evaluate
  esac
}
family_flags() {
  case "$1" in
    ae) echo "--model ae" ;;
    vae) echo "--model vae" ;;
    sigma-vae) echo "--model sigma-vae --model-option sigma=optimal" ;;
    vq-vae) echo "--model vq-vae" ;;
  esac
}
# The discriminator is sized for two CPU cores: 32 channels wide (0.7M parameters; the default 64 is 2.8M).
variant_flags() {
  case "$1" in
    plain) echo "" ;;
    adv) echo "--adversarial-weight 0.5 --adversarial-start $START --disc-width 32" ;;
    adv-fm) echo "--adversarial-weight 0.5 --adversarial-start $START --disc-width 32 --feature-matching-weight 0.02" ;;
  esac
}
prior_of() { case "$1" in *-vq-vae-*) echo autoregressive ;; *) echo gmm ;; esac; }

# Runs in seed-major order, so an interrupted study has every variant of the first seeds.
names() {
  for seed in "${SEEDS[@]}"; do for data in "${DATA[@]}"; do for preset in "${PRESETS[@]}"; do
    for family in "${FAMILIES[@]}"; do for variant in "${VARIANTS[@]}"; do
      echo "$data-$preset-$family-$variant-s$seed"
    done; done
  done; done; done
}
part() { local IFS=-; read -r -a p <<< "$1"; case "$2" in data) echo "${p[0]}" ;; preset) echo "${p[1]}" ;; esac; }

train_one() {
  local name=$1 data preset family variant seed
  if grep -q '"reason":"completed"' "$RUNS/$name/metrics.jsonl" 2>/dev/null; then return; fi
  data=$(part "$name" data); preset=$(part "$name" preset); seed=${name##*-s}
  family=$(echo "$name" | sed -E "s/^$data-$preset-(ae|vae|sigma-vae|vq-vae)-.*/\1/")
  variant=$(echo "$name" | sed -E "s/^$data-$preset-$family-(plain|adv|adv-fm)-s[0-9]+$/\1/")
  if [ -f "$RUNS/$name/checkpoints/last.ckpt" ]; then
    $VAE train --resume "$RUNS/$name" --threads "$THREADS"
  else
    rm -rf "${RUNS:?}/$name"
    # shellcheck disable=SC2046
    $VAE train $(data_flags "$data") --preset "$preset" $(family_flags "$family") $(variant_flags "$variant") \
      --max-steps "$STEPS" --epochs 100 --seed "$seed" --name "$name" --runs-dir "$RUNS" --threads "$THREADS" --log-every 50
  fi
}

# Everything is measured on last.ckpt: equal steps. (best.ckpt is the lowest validation loss, which a GAN term that
# trades a little MSE for sharpness does not aim at.)
prior_one() {
  local name=$1 kind; kind=$(prior_of "$1")
  [ -f "$RUNS/$name/priors/$kind/prior.json" ] || $VAE prior --run "$RUNS/$name" --kind "$kind" --checkpoint last
}

eval_one() {
  local name=$1 prior out
  for prior in standard "$(prior_of "$name")"; do
    out="$STUDY/eval/$name-$prior.json"
    if [ ! -s "$out" ]; then
      $VAE eval --run "$RUNS/$name" --checkpoint last --prior "$prior" --samples 2 --json > "$out.tmp"
      mv "$out.tmp" "$out"
    fi
  done
}

# Seed 0's grids: reconstructions of the same validation images, and samples under the fitted prior.
grids_one() {
  local name=$1 prior; prior=$(prior_of "$1")
  [[ "$name" == *-s0 ]] || return 0
  [ -s "$STUDY/grids/$name-reconstructions.png" ] || \
    $VAE reconstruct --run "$RUNS/$name" --checkpoint last --n 16 --columns 8 --out "$STUDY/grids/$name-reconstructions.png"
  [ -s "$STUDY/grids/$name-$prior.png" ] || \
    $VAE sample --run "$RUNS/$name" --checkpoint last --prior "$prior" --n 32 --columns 8 --seed 1 --out "$STUDY/grids/$name-$prior.png"
}

step_train() { for name in $(names); do train_one "$name"; done; }
step_priors() { for name in $(names); do prior_one "$name"; done; }
step_eval() { for name in $(names); do eval_one "$name"; done; }
step_grids() { for name in $(names); do grids_one "$name"; done; }
# A run whose numbers (and, for seed 0, grids) are already in $STUDY is complete: a fresh checkout, which has the
# results but not the runs, does not train it again.
measured() {
  local name=$1 prior; prior=$(prior_of "$1")
  [ -s "$STUDY/eval/$name-standard.json" ] && [ -s "$STUDY/eval/$name-$prior.json" ] || return 1
  [[ "$name" != *-s0 ]] || { [ -s "$STUDY/grids/$name-reconstructions.png" ] && [ -s "$STUDY/grids/$name-$prior.png" ]; }
}
step_runs() {
  for name in $(names); do
    measured "$name" || { train_one "$name"; prior_one "$name"; eval_one "$name"; grids_one "$name"; }
  done
}

step_table() { python3 bench/sharp-decoders-table.py "$STUDY" "${DOC:-docs/sharp-decoders.md}" > "$STUDY/table.md"; cat "$STUDY/table.md"; }

steps=("$@"); [ ${#steps[@]} -gt 0 ] || steps=(runs table)
for s in "${steps[@]}"; do "step_$s"; done
