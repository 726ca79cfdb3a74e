#!/usr/bin/env bash
# Benchmark: `dedup` whole against the same dedup in shards.
#  A read of SIZE_MB of near-duplicate JSONL (benches/make_near_dups.py), cut
#  into 8 files and read in 8 shards so that `dd`'s input is 8 Parquet
#  files; then, RUNS times alternated:
#   - `dd` in one process;
#   - SHARDS first-round shard processes one after another, then the merge
#     that clusters and filters in one process (`merge-1pass`);
#   - SHARDS first-round shards, for `minhash` SHARDS bucket jobs over
#     groups of bands (`--bands g/SHARDS`), `--cluster`, SHARDS second-round
#     (filter) shards, and the merge that joins their parts: what the
#     local and Slurm executors run.
#  Each process is timed with /usr/bin/time -v (wall seconds, peak RSS).
#  Prints one line per process.
#
#   KILN=path/to/kiln benches/dedup_shards.sh [SIZE_MB=300] [METHOD=minhash] [SHARDS=4] [RUNS=5] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-300}
METHOD=${2:-minhash}
SHARDS=${3:-4}
RUNS=${4:-5}
THREADS=${5:-2}
KILN=${KILN:-$PWD/target/release/kiln}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench-dedup}
DATA=${DATA:-../shared/data}
mkdir -p "$BENCH_DIR/split"

input=$BENCH_DIR/near-dups-${SIZE_MB}mb.jsonl
[ -f "$input" ] || python3 benches/make_near_dups.py "$DATA" "$input" "$SIZE_MB"
[ -f "$BENCH_DIR/split/part-7.jsonl" ] || split -n l/8 -d -a 1 --additional-suffix=.jsonl "$input" "$BENCH_DIR/split/part-"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo "input: $input ($(stat -c %s "$input") bytes) in 8 files; method $METHOD, $SHARDS shards, --threads $THREADS"

yaml=$BENCH_DIR/shards.yaml
cat > "$yaml" <<YAML
name: bench-dedup-shards
workdir: $BENCH_DIR/work
nodes:
  docs:
    op: read
    path: $BENCH_DIR/split/*.jsonl
  dd:
    op: dedup
    input: docs
    method: $METHOD
YAML
"$KILN" run "$yaml" --quiet --until docs --executor local --workers 2 --set executor.tasks=8

timed() { # label, kiln args...
  local label=$1
  shift
  /usr/bin/time -v "$KILN" run "$yaml" --quiet --threads "$THREADS" "$@" 2> "$BENCH_DIR/time.txt" > /dev/null
  awk -v l="$label" '/Elapsed \(wall clock\)/ { n = split($NF, t, ":"); s = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2] }
    /Maximum resident/ { r = $NF } END { printf "%-10s wall %7.2f s  peak RSS %5d MiB\n", l, s, r / 1024 }' "$BENCH_DIR/time.txt"
}
for run in $(seq 1 "$RUNS"); do
  echo "== run $run"
  timed whole --only dd --force dd
  for i in $(seq 0 $((SHARDS - 1))); do
    timed "shard $i" --node dd --shard "$i/$SHARDS"
  done
  timed merge-1pass --node dd --merge
  for i in $(seq 0 $((SHARDS - 1))); do
    timed "shard $i" --node dd --shard "$i/$SHARDS"
  done
  if [ "$METHOD" = minhash ]; then
    for g in $(seq 0 $((SHARDS - 1))); do
      timed "bands $g" --node dd --bands "$g/$SHARDS"
    done
  fi
  timed cluster --node dd --cluster
  for i in $(seq 0 $((SHARDS - 1))); do
    timed "filter $i" --node dd --shard "$i/$SHARDS"
  done
  timed join --node dd --merge
done
