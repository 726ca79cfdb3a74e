#!/usr/bin/env bash
# The quickstart end to end (issue 7): wall time and peak RSS per node from a
# clean runs/, the cached re-run, and the figures the recipe reaches (final
# pretrain and SFT val loss, reward-model held-out accuracy, PPO's last
# score and KL, held-out accuracy and mean reward of SFT vs PPO).
#
#   benches/quickstart.sh [RUNS=1]
#
# KILN=path uses a prebuilt binary instead of a release build. Each run uses
# a fresh work directory under $BENCH_DIR, so nothing is cached between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}/quickstart
if [ -z "${KILN:-}" ]; then
  cargo build --release --quiet
  KILN=$PWD/target/release/kiln
fi
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  w=$BENCH_DIR/run-$r
  rm -rf "$w" && mkdir -p "$w"
  ln -s "$PWD/data" "$w/data"
  cp pipelines/quickstart.yaml "$w/"
  start=$(date +%s.%N)
  (cd "$w" && "$KILN" run quickstart.yaml --quiet >summary.txt 2>log.txt)
  end=$(date +%s.%N)
  echo "== run $r: $(echo "$end - $start" | bc) s wall"
  cat "$w/summary.txt"
  start=$(date +%s.%N)
  (cd "$w" && "$KILN" run quickstart.yaml --quiet >/dev/null 2>&1)
  end=$(date +%s.%N)
  echo "cached re-run: $(echo "$end - $start" | bc) s"
  python3 - "$w/runs/quickstart" <<'PY'
import json, sys, os
d = sys.argv[1]
def last(node, key):
    v = None
    for line in open(os.path.join(d, node, "metrics.jsonl")):
        m = json.loads(line)
        if key in m:
            v = m[key]
    return v
print(f"pretrain val loss {last('lm', 'val_loss'):.4f}; SFT val loss {last('sft', 'val_loss'):.4f}")
print(f"reward model held-out accuracy {last('rm', 'val_accuracy'):.3f}, margin {last('rm', 'val_margin'):.3f}")
print(f"PPO last step: score {last('ppo', 'objective/scores'):.3f}, KL {last('ppo', 'objective/kl'):.3f}")
for n in ("eval_sft", "eval_ppo"):
    e = json.load(open(os.path.join(d, n, "eval.json")))
    print(f"{n}: held-out accuracy {e['accuracy']:.3f} ({e['n']} prompts), mean reward {e['mean_score']:.3f}")
PY
done
