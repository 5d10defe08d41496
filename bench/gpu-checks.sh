#!/usr/bin/env bash
# Every GPU measurement issue 13 still needs, in one call (about 8 minutes on an H200):
#   bash bench/gpu-checks.sh DIR_WITH_PUBLISHED_VAE OUTDIR
# DIR holds a `dotnet publish … -p:LibTorch=external` build (vae.dll); it runs on PyTorch's libtorch (VAEKIT_LIBTORCH=python).
#  1. Ctrl-C (SIGINT) at three moments: in the first epoch, mid-epoch later, at an epoch end (validation); each must
#     exit 130, leave checkpoints/last.ckpt, finish the W&B offline spool with 130, and resume to completion.
#  2. Resume vs an uninterrupted run (max |loss difference| per step), default and --deterministic.
#  3. GPU memory (NVML, and PyTorch's allocator peak for the same model) for base and large at batch 64, fp32 and bf16,
#     next to `vae info --memory`'s estimate.
#  4. bench/compare rows: bench-m b64 fp32 (PyTorch defaults), bench-m b256 bf16 (PyTorch autocast + channels_last
#     + cudnn.benchmark, VaeKit with and without --cudnn-benchmark; the inference column is the bf16 inference ratio),
#     and what --deterministic costs.
#  5. (GPU_CHECKS_SECTIONS="1 2 3 4" skips it) bench/compare on this host's CPU, 2 threads, same libtorch: bench-s and bench-m fp32,
#     training, inference and sampling ratios (issue 13 item 6).
# Everything goes to OUTDIR (summary.md is the one to read). On a CPU, for testing the script itself:
#   GPU_CHECKS_DEVICE=cpu bash bench/gpu-checks.sh src/VaeKit.Cli/bin/Release/net10.0 /tmp/gpu-checks
# (tiny sizes, the bundled libtorch). PYTHON names a Python with torch (default python3).
set -u
if [ $# -ne 2 ]; then echo "usage: bash bench/gpu-checks.sh DIR_WITH_PUBLISHED_VAE OUTDIR" >&2; exit 2; fi
VAEDIR=$(cd "$1" && pwd) || exit 2
OUT=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2
HERE=$(cd "$(dirname "$0")" && pwd)
DEVICE=${GPU_CHECKS_DEVICE:-cuda}
SECTIONS=" ${GPU_CHECKS_SECTIONS:-1 2 3 4 5} "   # e.g. GPU_CHECKS_SECTIONS="3 4" for a rerun of the benches only
want() { [[ "$SECTIONS" == *" $1 "* ]]; }
PYTHON=${PYTHON:-python3}
export WANDB_MODE=offline   # the spool only, no network
if [ "$DEVICE" = cuda ]; then
  export VAEKIT_LIBTORCH=${VAEKIT_LIBTORCH:-python}
  PRESET=base; DATA=synthetic:8192; BATCH=64; EPOCHS=4; VALF=0.25; THREADS=""
  MEM_PRESETS="base large"; MEM_BATCH=64; BSTEPS=40; BWARM=40; REPEAT=${GPU_CHECKS_REPEAT:-2}
  CONFIGS_FP32=bench-m:64:fp32; CONFIGS_BF16=bench-m:256:bf16
else
  # Testing the script on a (busy) CPU: a 16 px model with 6 steps per epoch, one repeat, minimal benches.
  PRESET="tiny --image-size 16 --widths 8,16 --latent 8"; DATA=synthetic:128; BATCH=32; EPOCHS=3; VALF=0.25; THREADS="--threads 1"
  MEM_PRESETS="bench-s"; MEM_BATCH=8; BSTEPS=1; BWARM=1; REPEAT=1
  CONFIGS_FP32=bench-s:8:fp32; CONFIGS_BF16=bench-s:8:bf16
fi
VAE="dotnet $VAEDIR/vae.dll"
SUMMARY=$OUT/summary.md
RUNS=$OUT/runs
CACHE=$OUT/cache
mkdir -p "$RUNS" "$CACHE"
FAILS=0
say() { echo "$*" | tee -a "$SUMMARY"; }
fail() { say "FAIL: $*"; FAILS=$((FAILS + 1)); }
: > "$SUMMARY"
say "# GPU checks ($(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, $(hostname))"
[ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/GPU: /' | tee -a "$SUMMARY"
say "vae: $VAE (VAEKIT_LIBTORCH=${VAEKIT_LIBTORCH:-bundled}); python: $($PYTHON -c 'import torch; print(torch.__version__, torch.__file__)' 2>&1)"

# A Python helper: waits for a moment in a run's metrics.jsonl, sends SIGINT, compares runs, reads spools.
cat > "$OUT/helper.py" <<'PY'
import json, os, signal, sys, time

def rows(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass   # a line being written
    return out

def wait_for(run, pid, moment, timeout=600):
    """Sends SIGINT to pid at the moment; returns what it hit."""
    pid, start = int(pid), time.time()
    while time.time() - start < timeout:
        r = rows(run)
        train = [x for x in r if x.get("type") == "train"]
        epochs = [x for x in r if x.get("type") == "epoch"]
        spe = epochs[0]["step"] if epochs else None
        hit = None
        if moment == "first-epoch" and train and not epochs:
            hit = f"step {train[-1]['step']} of epoch 1"
        elif moment == "mid-epoch-later" and spe and train and train[-1]["step"] >= 2 * spe + spe // 2:
            hit = f"step {train[-1]['step']} (epoch 3, {spe} steps per epoch)"
        elif moment == "validation" and spe and train and train[-1]["step"] >= 2 * spe:
            hit = (f"step {train[-1]['step']}: the epoch-2 end, before its epoch row (validation, grids, checkpoints)"
                   if len(epochs) < 2 else f"step {train[-1]['step']}: just after the epoch-2 end (validation missed)")
        if hit:
            os.kill(pid, signal.SIGINT)
            return hit
        try:
            os.kill(pid, 0)
        except OSError:
            return "the run ended before the moment came"
        time.sleep(0.02)
    return "timed out waiting for the moment"

def run_interrupt(run, moment, log, *cmd):
    """Starts cmd with SIGINT at its default disposition (a shell's background jobs inherit it ignored, and .NET
    keeps an inherited ignore), sends SIGINT at the moment, waits; prints 'what it hit|exit code'."""
    import subprocess
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    hit = wait_for(run, p.pid, moment)
    print(f"{hit}|{p.wait()}")

def losses(run):
    """step -> loss of the train rows, the last row per step winning (a resume rewrites from its checkpoint)."""
    return {x["step"]: x["loss"] for x in rows(run) if x.get("type") == "train"}

def compare(a, b):
    la, lb = losses(a), losses(b)
    common = sorted(set(la) & set(lb))
    if not common:
        print("no common steps")
        return
    diffs = [abs(la[s] - lb[s]) for s in common]
    first = next((s for s, d in zip(common, diffs) if d != 0), None)
    print(f"{len(common)} common steps, max |loss diff| {max(diffs):.3g}, identical: {max(diffs) == 0}, "
          f"first differing step {first}, last steps {max(la)} vs {max(lb)}")

def stop_reason(run):
    stops = [x.get("reason") for x in rows(run) if x.get("type") == "stop"]
    print(stops[-1] if stops else "none")

def spool_exit(run):
    path = os.path.join(run, "wandb", "run.json")
    if not os.path.exists(path):
        print("no spool")
        return
    info = json.load(open(path))
    print(info.get("exit_code", info.get("ExitCode", "missing")))

def bench_field(path, *keys):
    d = json.load(open(path))
    print(" ".join(str(d.get(k)) for k in keys))

getattr(sys.modules[__name__], sys.argv[1].replace("-", "_"))(*sys.argv[2:])
PY
helper() { $PYTHON "$OUT/helper.py" "$@"; }
COMMON="--preset $PRESET --data $DATA --batch-size $BATCH --epochs $EPOCHS --val-fraction $VALF --seed 7 --log-every 1 --device $DEVICE $THREADS --runs-dir $RUNS --cache-dir $CACHE"

# The uninterrupted reference first (it also renders and caches the synthetic images).
if want 1 || want 2; then
$VAE train $COMMON --name reference > "$OUT/reference.log" 2>&1; rc=$?
[ $rc -eq 0 ] || fail "the uninterrupted reference run exited $rc (see reference.log)"
fi
if want 1; then
say ""; say "## 1. Ctrl-C at three moments, then resume"
for moment in first-epoch mid-epoch-later validation; do
  run=$RUNS/int-$moment
  out=$(helper run-interrupt "$run" $moment "$OUT/int-$moment.log" $VAE train $COMMON --name int-$moment --wandb)
  hit=${out%|*}; rc=${out##*|}
  ckpt=$([ -f "$run/checkpoints/last.ckpt" ] && echo yes || echo NO)
  spool=$(helper spool-exit "$run")
  $VAE train --resume "$run" > "$OUT/int-$moment.resume.log" 2>&1; rrc=$?
  say "- $moment: SIGINT at $hit; exit $rc; last.ckpt $ckpt; W&B spool exit $spool; resume exit $rrc ($(helper stop-reason "$run")); vs reference: $(helper compare "$RUNS/reference" "$run")"
  [ $rc -eq 130 ] || fail "$moment: exit $rc, not 130 (int-$moment.log)"
  [ "$ckpt" = yes ] || fail "$moment: no last.ckpt"
  [ "$spool" = 130 ] || fail "$moment: W&B spool exit '$spool', not 130"
  [ $rrc -eq 0 ] || fail "$moment: the resume exited $rrc (int-$moment.resume.log)"
done
fi

if want 2; then
say ""; say "## 2. Resume vs uninterrupted, default and --deterministic"
$VAE train $COMMON --name reference-2 > "$OUT/reference-2.log" 2>&1 || fail "second reference run"
say "- two uninterrupted runs (run-to-run noise): $(helper compare "$RUNS/reference" "$RUNS/reference-2")"
$VAE train $COMMON --deterministic --name det-reference > "$OUT/det-reference.log" 2>&1 || fail "deterministic reference run"
out=$(helper run-interrupt "$RUNS/det-int" mid-epoch-later "$OUT/det-int.log" $VAE train $COMMON --deterministic --name det-int)
hit=${out%|*}; rc=${out##*|}
$VAE train --resume "$RUNS/det-int" > "$OUT/det-int.resume.log" 2>&1 || fail "deterministic resume"
say "- --deterministic, SIGINT at $hit (exit $rc), resumed: $(helper compare "$RUNS/det-reference" "$RUNS/det-int")"
say "- --deterministic vs default reference: $(helper compare "$RUNS/reference" "$RUNS/det-reference")"
fi

if want 3; then
say ""; say "## 3. GPU memory at batch $MEM_BATCH"
say "| preset | precision | vae bench: NVML used (MiB) | PyTorch same model: max allocated / reserved (MiB) | vae info --memory estimate (MiB) |"
say "|---|---|---|---|---|"
for preset in $MEM_PRESETS; do
  for precision in fp32 bf16; do
    j=$OUT/mem-$preset-$precision.json
    $VAE bench --preset $preset --batch $MEM_BATCH --precision $precision --device $DEVICE $THREADS --steps $BSTEPS --warmup $BWARM --json > "$j" 2> "$j.err" || fail "bench $preset $precision (see $j.err)"
    used=$(helper bench-field "$j" gpu_memory_used_bytes 2>/dev/null)
    $PYTHON "$HERE/pytorch_bench.py" --preset $preset --batch $MEM_BATCH --precision $precision --device $DEVICE $THREADS --steps $BSTEPS --warmup $BWARM > "$j.pt" 2> "$j.pt.err" || fail "pytorch_bench $preset $precision"
    pt=$(helper bench-field "$j.pt" gpu_max_allocated_bytes gpu_max_reserved_bytes 2>/dev/null)
    est=$($VAE info --preset $preset --memory --batch-size $MEM_BATCH --json 2>/dev/null | $PYTHON -c "import json,sys; print([r['total_bytes'] for r in json.load(sys.stdin) if r['precision']=='$precision'][0])")
    mib() { $PYTHON -c "import sys; print(' / '.join('-' if a in ('None','') else str(round(int(a)/2**20)) for a in sys.argv[1:]) or '-')" "$@"; }
    say "| $preset | $precision | $(mib $used) | $(mib $pt) | $(mib $est) |"
  done
done
fi

if want 4; then
say ""; say "## 4. Side by side with PyTorch (bench/compare, one run each)"
export VAE PYTHON
CMP="$PYTHON $HERE/compare --device $DEVICE ${THREADS} --repeat $REPEAT --steps $BSTEPS --warmup $BWARM"
$CMP --configs $CONFIGS_FP32 --json "$OUT/compare-fp32.json" > "$OUT/compare-fp32.md" 2> "$OUT/compare-fp32.err" || fail "compare fp32"
say "### $CONFIGS_FP32, PyTorch eager defaults"; cat "$OUT/compare-fp32.md" >> "$SUMMARY"
$CMP --configs $CONFIGS_BF16 --pytorch-args=--cudnn-benchmark --json "$OUT/compare-bf16.json" > "$OUT/compare-bf16.md" 2> "$OUT/compare-bf16.err" || fail "compare bf16"
say ""; say "### $CONFIGS_BF16, PyTorch autocast + channels_last + cudnn.benchmark; VaeKit default (inference ratio = bf16 inference on the twin)"; cat "$OUT/compare-bf16.md" >> "$SUMMARY"
$CMP --configs $CONFIGS_BF16 --pytorch-args=--cudnn-benchmark --vae-args=--cudnn-benchmark --json "$OUT/compare-bf16-cb.json" > "$OUT/compare-bf16-cb.md" 2> "$OUT/compare-bf16-cb.err" || fail "compare bf16 cudnn-benchmark"
say ""; say "### $CONFIGS_BF16, both with cudnn.benchmark"; cat "$OUT/compare-bf16-cb.md" >> "$SUMMARY"
say ""; say "### what --deterministic costs (vae bench, alternated)"
IFS=: read -r p b pr <<< "$CONFIGS_FP32"
FLAGS=("" --deterministic "" --deterministic); [ "$DEVICE" = cuda ] || FLAGS=("" --deterministic)
for flag in "${FLAGS[@]}"; do
  $VAE bench --preset $p --batch $b --precision $pr --device $DEVICE $THREADS --steps $BSTEPS --warmup $BWARM --json $flag > "$OUT/det-cost.json" 2>/dev/null || fail "bench $flag"
  say "- $p b$b $pr ${flag:-default}: $(helper bench-field "$OUT/det-cost.json" train_images_per_second inference_images_per_second) img/s (train, inference)"
done
fi

if want 5 && [ "$DEVICE" = cuda ]; then
  say ""; say "## 5. CPU, same libtorch (this host's CPU, 2 threads): training, inference, sampling"
  $PYTHON "$HERE/compare" --device cpu --threads 2 --configs bench-s:64:fp32,bench-m:64:fp32 --steps 8 --warmup 2 --repeat 2 \
    --json "$OUT/compare-cpu.json" > "$OUT/compare-cpu.md" 2> "$OUT/compare-cpu.err" || fail "compare cpu"
  cat "$OUT/compare-cpu.md" >> "$SUMMARY"
fi

say ""; say "Failures: $FAILS"
exit $((FAILS > 0))
