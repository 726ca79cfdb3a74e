#!/usr/bin/env bash
# Benchmark: MinHash dedup.
#  1. signature MB/s on one core (`cargo bench --bench dedup`);
#  2. a full `read` + `dedup: minhash` of SIZE_MB of near-duplicate JSONL
#     (the shared texts repeated with seeded edits, benches/make_near_dups.py)
#     under `memory_mb: MEMORY_MB`, with wall time and peak RSS
#     (/usr/bin/time -v, and the manifest's peak_rss_bytes).
#
#   benches/dedup.sh [SIZE_MB=1100] [MEMORY_MB=1024] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1100}
MEMORY_MB=${2:-1024}
THREADS=${3:-2}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench-dedup}
DATA=${DATA:-../shared/data}
mkdir -p "$BENCH_DIR"

cargo bench --bench dedup
cargo build --release --quiet
KILN=$PWD/target/release/kiln

input=$BENCH_DIR/near-dups-${SIZE_MB}mb.jsonl
[ -f "$input" ] || python3 benches/make_near_dups.py "$DATA" "$input" "$SIZE_MB"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo "input: $input ($(stat -c %s "$input") bytes)"

work=$BENCH_DIR/work
rm -rf "$work"
read_node="name: bench-dedup
workdir: $work
nodes:
  docs:
    op: read
    path: $input"
echo "$read_node" > "$BENCH_DIR/read.yaml"
cat > "$BENCH_DIR/dedup.yaml" <<YAML
$read_node
  dd:
    op: dedup
    input: docs
    method: minhash
    memory_mb: $MEMORY_MB
YAML
# Read first, so the timed run is the dedup alone.
"$KILN" run "$BENCH_DIR/read.yaml" --quiet --threads "$THREADS"
/usr/bin/time -v "$KILN" run "$BENCH_DIR/dedup.yaml" --quiet --threads "$THREADS" 2> "$BENCH_DIR/time.txt"
grep -E "Elapsed|Maximum resident" "$BENCH_DIR/time.txt"
python3 - "$work/dd/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("dedup wall_time_s:", round(m["wall_time_s"], 1), " peak_rss_bytes:", m["peak_rss_bytes"])
print("stats:", json.dumps(m["stats"]["dedup"]))
PY
