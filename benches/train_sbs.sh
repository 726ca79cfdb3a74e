#!/usr/bin/env bash
# Training steps side by side with PyTorch (issue 5): for each run and config,
# PyTorch (benches/train_step_torch.py: eager f32, torch.compile f32, bf16
# autocast) then kiln (benches/train_step.rs: f32 and bf16), alternating so
# that a noisy machine slows both alike. Prints every run's line, then per
# config the medians and the median of the per-run ratios kiln f32 /
# torch.compile and kiln bf16 / autocast.
#
#   benches/train_sbs.sh [RUNS] [CONFIG...]     (default: 5 tiny small 124m)
#
# CONFIG is one of tiny, small, 124m, 124m-1024. PY (default
# /tmp/kiln-bench/venv/bin/python) needs torch and transformers
# (`pip install torch transformers`); TRAIN_STEP names a prebuilt
# `train_step` bench binary, otherwise it is built here with --release.
# MODES (default eager,compile,bf16) and STEPS (default: the scripts' own)
# pass through to both sides. The log is kept in $BENCH_DIR/train_sbs.log.
#
# PyTorch runs on jemalloc, set to keep the pages it frees, when the machine
# has it (`apt-get install libjemalloc2`; JEMALLOC= runs PyTorch on glibc's
# malloc). PyTorch's CPU tuning guide recommends a caching allocator
# (pytorch.org, "Performance Tuning Guide", "Switch Memory allocator"); the
# options are jemalloc's TUNING.md ones for keeping memory. Under glibc every
# step's large tensors are mapped and unmapped again: 1.7 million page faults
# in 12 steps of `small` on the session-19 VM, and PyTorch's bf16 step was
# 25–45% slower and varied 2,452–3,826 tokens/s from run to run. kiln's
# buffers live across steps, so it takes its faults in set-up only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
shift || true
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(tiny small 124m)
PY=${PY:-/tmp/kiln-bench/venv/bin/python}
MODES=${MODES:-eager,compile,bf16}
LOG=${BENCH_DIR:-/tmp/kiln-bench}/train_sbs.log
mkdir -p "$(dirname "$LOG")"
if [ -z "${TRAIN_STEP:-}" ]; then
  TRAIN_STEP=$(cargo bench --bench train_step --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)
fi
# This CPU's peaks on the bench's threads, for both sides' percentages.
read -r PEAK_F32 PEAK_BF16 < <("$TRAIN_STEP" --peaks | sed -n 's/.*f32 FMA \([0-9]*\) .*vdpbf16ps \([0-9]*\) .*/\1 \2/p')
export PEAK_F32 PEAK_BF16
JEMALLOC=${JEMALLOC-/lib/x86_64-linux-gnu/libjemalloc.so.2}
torch_env=(env)
alloc="glibc malloc"
if [ -n "$JEMALLOC" ] && [ -e "$JEMALLOC" ]; then
  torch_env=(env LD_PRELOAD="$JEMALLOC" MALLOC_CONF=oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1)
  alloc="jemalloc ($JEMALLOC, pages kept)"
fi
steps=()
[ -z "${STEPS:-}" ] || steps=(--steps "$STEPS")
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg); peaks: f32 FMA $PEAK_F32, bf16 vdpbf16ps $PEAK_BF16 GFLOP/s; PyTorch allocator: $alloc" | tee "$LOG"
for i in $(seq 1 "$RUNS"); do
  for c in "${CONFIGS[@]}"; do
    echo "== run $i $c" | tee -a "$LOG"
    "${torch_env[@]}" "$PY" benches/train_step_torch.py "$c" --modes "$MODES" "${steps[@]}" 2>&1 | grep -E "tokens/s" | sed 's/^/torch /' | tee -a "$LOG"
    # kiln's bench names the T 1024 config the same way.
    "$TRAIN_STEP" "$c" --precision both "${steps[@]}" 2>&1 | grep -E "tokens/s|breakdown" | sed 's/^/kiln /' | tee -a "$LOG"
  done
done
"$PY" - "$LOG" <<'PY'
import re, statistics, sys
runs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("== run"):
        cur = {"config": line.split()[3]}
        runs.append(cur)
    elif cur is not None and (m := re.match(r"(torch|kiln)\s+\S+\s+(\S+)\s+tokens/s\s+(\d+)", line)):
        cur[f"{m.group(1)} {m.group(2)}"] = float(m.group(3))
med = statistics.median
for c in dict.fromkeys(r["config"] for r in runs):
    rs = [r for r in runs if r["config"] == c]
    print(f"{c}, tokens/s per run (median):")
    for k in ("torch eager", "torch compile", "kiln f32", "torch bf16", "kiln bf16"):
        xs = [r[k] for r in rs if k in r]
        if xs:
            print(f"  {k:<14} {' '.join(f'{x:.0f}' for x in xs)} ({med(xs):.0f})")
    for a, b in (("kiln f32", "torch compile"), ("kiln bf16", "torch bf16")):
        q = [r[a] / r[b] for r in rs if a in r and b in r]
        if q:
            print(f"  {a} / {b}: {' '.join(f'{x:.2f}' for x in q)} -> median {med(q):.2f}x")
PY
