#!/usr/bin/env bash
# Benchmark: `read` JSONL -> Parquet artifact, kiln vs Python polars
# (`pl.scan_ndjson(...).sink_parquet(...)`), both on 2 threads, on the same
# file; then kiln's peak RSS on a 1 GiB input.
#
#   benches/read_jsonl.sh [SIZE_MB=200] [RUNS=5] [BIG_MB=1024]
#
# Needs ../shared/data, python3 with pip (polars is installed into a venv
# under $BENCH_DIR). Prints one line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-200}
RUNS=${2:-5}
BIG_MB=${3:-1024}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=${DATA:-../shared/data}
POLARS_VERSION=${POLARS_VERSION:-2.1.0}
mkdir -p "$BENCH_DIR"

cargo build --release --quiet
KILN=$PWD/target/release/kiln
if [ ! -x "$BENCH_DIR/venv/bin/python" ]; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install --quiet "polars==$POLARS_VERSION"
fi
PY=$BENCH_DIR/venv/bin/python

input=$BENCH_DIR/input-${SIZE_MB}mb.jsonl
[ -f "$input" ] || python3 benches/make_jsonl.py "$DATA" "$input" "$SIZE_MB"
bytes=$(stat -c %s "$input")

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "input: $input ($bytes bytes)"

pipeline() { # $1 = input, $2 = workdir
  cat > "$BENCH_DIR/read.yaml" <<YAML
name: bench
workdir: $2
nodes:
  docs:
    op: read
    path: $1
YAML
}

measure() { # prints "seconds maxrss_kb" of the command
  /usr/bin/time -f "%e %M" -o "$BENCH_DIR/time.txt" "$@" >/dev/null 2>"$BENCH_DIR/err.txt" || { cat "$BENCH_DIR/err.txt"; exit 1; }
  cat "$BENCH_DIR/time.txt"
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: > "$BENCH_DIR/kiln.txt"; : > "$BENCH_DIR/polars.txt"
for i in $(seq "$RUNS"); do
  rm -rf "$BENCH_DIR/work" "$BENCH_DIR/polars.parquet"
  pipeline "$input" "$BENCH_DIR/work"
  k=$(measure "$KILN" run "$BENCH_DIR/read.yaml" --threads 2 --quiet)
  p=$(POLARS_MAX_THREADS=2 measure "$PY" -c "import polars as pl; pl.scan_ndjson('$input').sink_parquet('$BENCH_DIR/polars.parquet')")
  echo "$k" >> "$BENCH_DIR/kiln.txt"; echo "$p" >> "$BENCH_DIR/polars.txt"
  echo "run $i: kiln ${k% *}s (RSS ${k#* } KiB)   polars ${p% *}s (RSS ${p#* } KiB)"
done
kt=$(cut -d' ' -f1 "$BENCH_DIR/kiln.txt" | median); pt=$(cut -d' ' -f1 "$BENCH_DIR/polars.txt" | median)
kr=$(cut -d' ' -f2 "$BENCH_DIR/kiln.txt" | median); pr=$(cut -d' ' -f2 "$BENCH_DIR/polars.txt" | median)
awk -v b="$bytes" -v kt="$kt" -v pt="$pt" -v kr="$kr" -v pr="$pr" 'BEGIN{
  printf "median of runs: kiln %.2fs = %.1f MB/s, peak RSS %.0f MiB | polars %.2fs = %.1f MB/s, peak RSS %.0f MiB | kiln/polars speed %.2fx\n",
    kt, b/1e6/kt, kr/1024, pt, b/1e6/pt, pr/1024, pt/kt }'
echo "kiln output: $(du -sb "$BENCH_DIR/work/docs/data" | cut -f1) bytes parquet; polars: $(stat -c %s "$BENCH_DIR/polars.parquet") bytes"

if [ "$BIG_MB" -gt 0 ]; then
  big=$BENCH_DIR/input-${BIG_MB}mb.jsonl
  [ -f "$big" ] || python3 benches/make_jsonl.py "$DATA" "$big" "$BIG_MB"
  rm -rf "$BENCH_DIR/work"
  pipeline "$big" "$BENCH_DIR/work"
  r=$(measure "$KILN" run "$BENCH_DIR/read.yaml" --threads 2 --quiet)
  awk -v b="$(stat -c %s "$big")" -v t="${r% *}" -v m="${r#* }" 'BEGIN{printf "big input %.0f MB: kiln %.2fs = %.1f MB/s, peak RSS %.0f MiB\n", b/1e6, t, b/1e6/t, m/1024}'
  rm -rf "$BENCH_DIR/work"
fi
