#!/usr/bin/env bash
# The prepared GPU run (issue 8): takes the `gpu` bench binary built on a
# machine with Rust, runs the kernel/model checks against the CPU backend,
# then times GPT-2 124M training (T 1024, bf16) and the attention and AdamW
# kernels against the ceilings it measures first.
#
# Build (here, no GPU needed):
#   CARGO_TARGET_DIR=target cargo build --features cuda --bench gpu \
#     --config 'profile.dev.package.kiln.opt-level=3' \
#     --config 'profile.dev.package.kiln.debug-assertions=false'
#   mkdir -p .gpu && cp "$(ls -t target/debug/deps/gpu-* | grep -v '\.d$' | head -1)" .gpu/gpu && strip .gpu/gpu
# Run (on the GPU machine, repo root):
#   benches/gpu.sh [.gpu/gpu] [--batch 8,16,32] [--steps 10]
# Logs go to $OUT (or /tmp/kiln-gpu) as checks.log and bench.log.
set -uo pipefail
BIN=${1:-.gpu/gpu}
shift || true
LOG=${OUT:-/tmp/kiln-gpu}
mkdir -p "$LOG"

# cudarc is built for CUDA 12.9 and looks for libcublas.so / libnvrtc.so
# (unversioned or .so.12); a CUDA 13 machine has .so.13. Link the newest
# found under the plain names.
LIBDIR=$(mktemp -d)
for lib in cublas cublasLt nvrtc; do
  f=$(ls -1 /usr/local/cuda/lib64/lib$lib.so.* /usr/local/cuda/targets/x86_64-linux/lib/lib$lib.so.* \
        /usr/lib/x86_64-linux-gnu/lib$lib.so.* \
        "$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)"/nvidia/*/lib/lib$lib.so.* 2>/dev/null \
      | grep -v alt | sort -V | tail -1)
  if [ -n "$f" ]; then
    ln -sf "$f" "$LIBDIR/lib$lib.so"
    echo "lib$lib.so -> $f"
    export LD_LIBRARY_PATH="$(dirname "$f"):${LD_LIBRARY_PATH:-}"
  else
    echo "lib$lib not found"
  fi
done
export LD_LIBRARY_PATH="$LIBDIR:${LD_LIBRARY_PATH:-}"
export KILN_CACHE_DIR=${KILN_CACHE_DIR:-/tmp/kiln-cache}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total,temperature.gpu --format=csv 2>&1 | tee "$LOG/gpu.txt"
nproc; grep -m1 'model name' /proc/cpuinfo

echo "== checks"
KILN_CUDA_SYNC=1 timeout 240 "$BIN" --checks 2>&1 | tee "$LOG/checks.log"
checks=${PIPESTATUS[0]}
echo "== bench"
timeout 280 "$BIN" --bench "$@" 2>&1 | tee "$LOG/bench.log"
bench=${PIPESTATUS[0]}
echo "== exit: checks $checks, bench $bench"
grep -E '^  (ok|FAIL)' "$LOG/checks.log"
grep -E 'TFLOP|GB/s|ms/step|floor|memory|failed' "$LOG/bench.log"
[ "$checks" = 0 ] && [ "$bench" = 0 ]
