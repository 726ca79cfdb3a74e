#!/usr/bin/env bash
# The executors on one node: read + clean of generated documents, inline
# (one process, all cores), --executor local (2 worker processes) and
# --executor slurm (2 array tasks, --wait), fresh workdir each run.
# Prints the median wall time of RUNS runs of each. Needs a kiln binary
# (KILN, default target/release/kiln) and, for the Slurm row, a running
# Slurm (.ci/slurm-up).
#   benches/executors.sh [DOCS] [RUNS]
set -euo pipefail
DOCS=${1:-150000}
RUNS=${2:-5}
KILN=$(realpath "${KILN:-target/release/kiln}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
python3 - "$DOCS" <<'PY'
import json, random, sys
random.seed(1)
words = "the a river stone cloud tree house light water green north field of and to in is was for on".split()
# Eight files: a node shards by file, as a crawl of many WARCs would.
import os
os.makedirs("in", exist_ok=True)
files = [open(f"in/docs-{k}.jsonl", "w") for k in range(8)]
for i in range(int(sys.argv[1])):
    n = random.randint(60, 200)
    text = " ".join(random.choice(words) for _ in range(n))
    files[i % 8].write(json.dumps({"id": str(i), "text": text[0].upper() + text[1:] + "."}) + "\n")
PY
cat > p.yaml <<'YAML'
name: bench
nodes:
  docs:
    op: read
    path: in
    batch_bytes: 1048576
    shard_bytes: 16777216
  clean:
    op: clean
    input: docs
    steps: [gopher_repetition, gopher_quality, c4, fineweb]
YAML
echo "input: $(du -sm in | cut -f1) MB in 8 files, $DOCS documents; nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_run() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
row() {
  local name=$1; shift
  local t
  t=$(for i in $(seq 1 "$RUNS"); do time_run "$KILN" run p.yaml --quiet --set "workdir=w-$name-$i" "$@"; done | median)
  echo "$name: median ${t}s of $RUNS"
}
row inline
row local --executor local --workers 2 --set executor.tasks=2
if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  row slurm --executor slurm --wait --set executor.tasks=2 --set executor.cpus_per_task=1
else
  echo "slurm: skipped (no Slurm; run .ci/slurm-up)"
fi
