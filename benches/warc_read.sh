#!/usr/bin/env bash
# Benchmark: `read` of a WARC (gzip per record) -> documents Parquet artifact.
#
#   benches/warc_read.sh [RUNS=5]
#
# The input: the 990 trafilatura evaluation pages of ../shared/data (143 MB
# of real HTML) wrapped into one response record each by benches/make_warc.py,
# written to $BENCH_DIR/trafilatura.warc.gz (the `clean` throughput bench
# reuses it). Throughput is uncompressed WARC bytes per second of wall time
# for `kiln run` of a read-only pipeline on 2 threads; prints each run and
# the median. KILN=path uses a prebuilt binary instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=${DATA:-../shared/data}
mkdir -p "$BENCH_DIR"
if [ -z "${KILN:-}" ]; then
  cargo build --release --quiet
  KILN=$PWD/target/release/kiln
fi

input=$BENCH_DIR/trafilatura.warc.gz
[ -f "$input" ] || python3 benches/make_warc.py "$DATA" "$input"
raw=$(gzip -dc "$input" | wc -c)
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo "input: $input ($(stat -c %s "$input") bytes gzip, $raw bytes uncompressed)"

cat > "$BENCH_DIR/warc.yaml" <<YAML
name: bench-warc
workdir: $BENCH_DIR/warc-work
nodes:
  docs:
    op: read
    path: $input
YAML

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: > "$BENCH_DIR/warc-times.txt"
for i in $(seq "$RUNS"); do
  rm -rf "$BENCH_DIR/warc-work"
  /usr/bin/time -f "%e %M" -o "$BENCH_DIR/time.txt" "$KILN" run "$BENCH_DIR/warc.yaml" --threads 2 --quiet >/dev/null 2>"$BENCH_DIR/err.txt" \
    || { cat "$BENCH_DIR/err.txt"; exit 1; }
  read -r t m < "$BENCH_DIR/time.txt"
  echo "$t $m" >> "$BENCH_DIR/warc-times.txt"
  echo "run $i: ${t}s, peak RSS $((m / 1024)) MiB"
done
rows=$(python3 -c "import json;print(json.load(open('$BENCH_DIR/warc-work/docs/manifest.json'))['rows'])")
t=$(cut -d' ' -f1 "$BENCH_DIR/warc-times.txt" | median)
m=$(cut -d' ' -f2 "$BENCH_DIR/warc-times.txt" | median)
awk -v b="$raw" -v t="$t" -v m="$m" -v r="$rows" 'BEGIN{
  printf "median of runs: %.2fs = %.1f MB/s uncompressed WARC (%.0f docs/s, %d docs), peak RSS %.0f MiB\n", t, b/1e6/t, r/t, r, m/1024 }'
