#!/usr/bin/env bash
# Regenerates the pictures of README.md's tour (docs/tour/*, docs/serve.png) from the default run: `vae train` with
# no flags (the tiny VAE on 8,192 synthetic faces, 20 epochs), trained here to the end, nothing shortened.
# About 80 min on 2 busy CPU cores (a few minutes on an idle 8-core machine); the run goes to artifacts/front-page/.
# Usage: bash bench/front-page-pictures.sh [--skip-training]   (--skip-training reuses the finished run there)
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=artifacts/front-page
run="$out/runs/default"
tour=docs/tour
mkdir -p "$out" "$tour"

dotnet build -c Release src/VaeKit.Cli --nologo -v quiet
vae() { dotnet src/VaeKit.Cli/bin/Release/net10.0/vae.dll "$@"; }

if [ "${1:-}" != "--skip-training" ]; then
  rm -rf "$run"
  vae train --runs-dir "$out/runs" --name default   # the default run: no other flag
fi
[ -f "$run/images/epoch_020_samples.png" ] || { echo "error: $run has not finished its 20 epochs" >&2; exit 1; }

# train: what the run directory shows after 20 epochs
cp "$run/images/epoch_020_samples.png" "$tour/train-samples.png"
cp "$run/images/epoch_020_reconstruction.png" "$tour/train-reconstruction.png"
# sample, interpolate, traverse: the run's best checkpoint
vae sample --run "$run" --n 32 --out "$tour/sample.png"
vae interpolate --run "$run" --pairs 4 --mode slerp --out "$tour/interpolate.png"
vae traverse --run "$run" --dims 6 --out "$tour/traverse.png"
# eval: the numbers the README quotes
vae eval --run "$run" | tee "$tour/eval.txt"
# report: the HTML report as headless Chromium renders its top
vae report "$run" --out "$out/report.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1500 \
  --screenshot="$PWD/$tour/report.png" "file://$PWD/$out/report.html" 2>/dev/null
# serve: the run in vae serve, in Chromium (the browser test's helper writes docs/serve.png)
VAEKIT_SERVE_DOCS="$PWD/$run" dotnet test tests/VaeKit.Tests -c Release --filter FullyQualifiedName~Docs_screenshot --nologo -v quiet
ls -l "$tour" docs/serve.png
