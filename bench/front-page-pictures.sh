#!/usr/bin/env bash
# Regenerates the pictures of README.md's tour (docs/tour/*, docs/serve.png) from the default run with the
# discriminator on: `vae train --adversarial-weight 0.5 --adversarial-start 500 --disc-width 32` (the tiny VAE on
# 8,192 synthetic faces, 20 epochs), and the two epoch-20 grids of the same run without it (`vae train`, no flags) for
# the comparison the README shows. Both are trained here to the end, nothing shortened; about 25 min on 2 busy CPU
# cores; the runs go to artifacts/front-page/.
# Usage: bash bench/front-page-pictures.sh [--skip-training]   (--skip-training reuses the finished runs there)
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=artifacts/front-page
run="$out/runs/default"              # the tour's run: the default run plus the discriminator
plain="$out/plain-runs/default"      # the default run itself
tour=docs/tour
mkdir -p "$out" "$tour"

dotnet build -c Release src/VaeKit.Cli --nologo -v quiet
vae() { dotnet src/VaeKit.Cli/bin/Release/net10.0/vae.dll "$@"; }

if [ "${1:-}" != "--skip-training" ]; then
  rm -rf "$run" "$plain"
  vae train --runs-dir "$out/runs" --name default --adversarial-weight 0.5 --adversarial-start 500 --disc-width 32
  vae train --runs-dir "$out/plain-runs" --name default   # no flag at all
fi
for r in "$run" "$plain"; do
  [ -f "$r/images/epoch_020_samples.png" ] || { echo "error: $r has not finished its 20 epochs" >&2; exit 1; }
done
cp "$plain/images/epoch_020_samples.png" "$tour/train-samples-plain.png"
cp "$plain/images/epoch_020_reconstruction.png" "$tour/train-reconstruction-plain.png"

# train: what the run directory shows after 20 epochs
cp "$run/images/epoch_020_samples.png" "$tour/train-samples.png"
cp "$run/images/epoch_020_reconstruction.png" "$tour/train-reconstruction.png"
# sample, interpolate, traverse: the run's best checkpoint
vae sample --run "$run" --n 32 --out "$tour/sample.png"
vae interpolate --run "$run" --pairs 4 --mode slerp --out "$tour/interpolate.png"
vae traverse --run "$run" --dims 6 --out "$tour/traverse.png"
# eval: the numbers the README quotes, for the tour's run and for the plain run beside it
vae eval --run "$run" | tee "$tour/eval.txt"
vae eval --run "$plain" | tee "$tour/eval-plain.txt"
# report: the HTML report as headless Chromium renders its top
vae report "$run" --out "$out/report.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1500 \
  --screenshot="$PWD/$tour/report.png" "file://$PWD/$out/report.html" 2>/dev/null
# serve: the run in vae serve, in Chromium (the browser test's helper writes docs/serve.png)
VAEKIT_SERVE_DOCS="$PWD/$run" dotnet test tests/VaeKit.Tests -c Release --filter FullyQualifiedName~Docs_screenshot --nologo -v quiet
ls -l "$tour" docs/serve.png
