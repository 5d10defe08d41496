#!/usr/bin/env bash
# The generation study (docs/generation.md, "The study"): every family at one budget on Fashion-MNIST and on the
# synthetic faces, fitted priors, image-space FD under each prior, and sample grids, all by `vae` commands.
#
#   bash bench/generation-study.sh [STEP...]     STEP: train, priors, eval, grids, table (default: all, in order)
#
# Environment: VAE (the command; default: the Release build in this checkout), STUDY (output folder; default
# study/), THREADS (libtorch threads; default 2), ONLY (a regular expression: only runs whose name matches). Steps skip runs that are already complete, so the script can be
# rerun after an interruption. On this project's 2-core machine the whole study takes about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
VAE=${VAE:-"dotnet src/VaeKit.Cli/bin/Release/net10.0/vae.dll"}
STUDY=${STUDY:-study}
THREADS=${THREADS:-2}
RUNS="$STUDY/runs"
mkdir -p "$RUNS"

# One budget for every run of a data set: tiny preset, 32 px; Fashion-MNIST one epoch (937 steps of 64, evaluated
# on its 10,000 test images), the faces 3 epochs of synthetic:12000 with a quarter held out (9,000 training images,
# 420 steps of 64; the 3,000 held-out faces are the evaluation set, so the FD is measured at N = 3,000).
FM=(--data fashion-mnist --preset tiny --epochs 1)
FACES=(--data synthetic:12000 --val-fraction 0.25 --preset tiny --epochs 3)

# name | family flags
ROWS=(
  "ae|--model ae"
  "vae|--model vae --kl-weight 1"
  "vae-kl0.3|--model vae --kl-weight 0.3"
  "vae-kl0.1|--model vae --kl-weight 0.1"
  "vae-kl0.03|--model vae --kl-weight 0.03"
  "sigma-optimal|--model sigma-vae --model-option sigma=optimal"
  "sigma-learned|--model sigma-vae --model-option sigma=learned"
  "vq-flat|--model vq-vae"
  "vq-grid|--model vq-vae --model-option layout=grid"
)

train() {
  local prefix=$1; shift
  local data=("$@")
  for row in "${ROWS[@]}"; do
    local name="$prefix-${row%%|*}" flags="${row#*|}"
    [[ "$name" =~ ${ONLY:-.} ]] || continue
    if grep -q '"reason":"completed"' "$RUNS/$name/metrics.jsonl" 2>/dev/null; then continue; fi
    if [ -d "$RUNS/$name" ]; then
      $VAE train --resume "$RUNS/$name" --threads "$THREADS"
    else
      # shellcheck disable=SC2086
      $VAE train "${data[@]}" $flags --name "$name" --runs-dir "$RUNS" --threads "$THREADS" --seed 0
    fi
  done
}

step_train() { train fm "${FM[@]}"; train faces "${FACES[@]}"; }
step_train_fm() { train fm "${FM[@]}"; }
step_train_faces() { train faces "${FACES[@]}"; }

names() { for prefix in fm faces; do for row in "${ROWS[@]}"; do local n="$prefix-${row%%|*}"; [[ "$n" =~ ${ONLY:-.} ]] && echo "$n"; done; done; }
priors_of() { case "$1" in *-vq-*) echo "standard autoregressive" ;; *) echo "standard gmm" ;; esac; }

# Fitted priors: a 10-component GMM on the posterior means (ae, vae, sigma-vae); an autoregressive model of the codes
# (vq-vae: a causal Transformer over the flat layout, a gated PixelCNN over the grid).
step_priors() {
  for name in $(names); do
    case "$name" in
      *-vq-*) [ -f "$RUNS/$name/priors/autoregressive/prior.json" ] || $VAE prior --run "$RUNS/$name" --kind autoregressive --max-steps "${AR_STEPS:-2000}" ;;
      *) [ -f "$RUNS/$name/priors/gmm/prior.json" ] || $VAE prior --run "$RUNS/$name" --kind gmm ;;
    esac
  done
}

# vae eval under each prior that applies: MSE, KL, image-space FD of the prior's samples, of the reconstructions,
# and the floor (real against real at the same N), as JSON.
step_eval() {
  mkdir -p "$STUDY/eval"
  for name in $(names); do
    for prior in $(priors_of "$name"); do
      out="$STUDY/eval/$name-$prior.json"
      # An if, not `[ -s ] || eval > tmp && mv`: that list aborts a rerun (mv of no tmp) and hides a failed eval.
      if [ ! -s "$out" ]; then
        $VAE eval --run "$RUNS/$name" --prior "$prior" --samples 2 --json > "$out.tmp"
        mv "$out.tmp" "$out"
      fi
    done
  done
}

step_grids() {
  mkdir -p "$STUDY/grids"
  for name in $(names); do
    for prior in $(priors_of "$name"); do
      $VAE sample --run "$RUNS/$name" --prior "$prior" --n 32 --columns 16 --scale 2 --seed 1 --out "$STUDY/grids/$name-$prior.png"
    done
  done
}

step_table() { python3 bench/generation-study-table.py "$STUDY/eval" > "$STUDY/table.md"; cat "$STUDY/table.md"; }

steps=("$@"); [ ${#steps[@]} -gt 0 ] || steps=(train priors eval grids table)
for s in "${steps[@]}"; do "step_$s"; done
