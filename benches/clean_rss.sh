#!/usr/bin/env bash
# Peak RSS of the `clean` node on about 100 MB and about 1 GB of input
# (issue 3: it must not grow with the input).
#
#   benches/clean_rss.sh [SIZES="1e8 1e9"]
#
# Each input is the 990 trafilatura pages cycled to that many bytes of HTML
# (benches/make_warc.py --bytes: each repeat has its own URL and record id),
# in two WARC files. `read` turns it into a documents artifact first, in a
# process of its own; then `kiln run --force clean` runs only the `clean`
# node (the recipe's steps up to `fineweb`, 2 threads) in a fresh process,
# so its peak RSS (VmHWM, as the manifest's peak_rss_bytes and
# /usr/bin/time's maximum RSS record it) is the clean node's alone.
# KILN=path uses a prebuilt binary instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-1e8 1e9}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=${DATA:-../shared/data}
W=$BENCH_DIR/rss
mkdir -p "$W"
if [ -z "${KILN:-}" ]; then
  cargo build --release --quiet
  KILN=$PWD/target/release/kiln
fi
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do
  warc=$W/warc-$s
  [ -f "$warc/part-00001.warc.gz" ] || python3 benches/make_warc.py "$DATA" "$warc" --parts 2 --bytes "$s"
  cat > "$W/clean-$s.yaml" <<YAML
name: bench-clean-rss
workdir: $W/work-$s
nodes:
  raw:
    op: read
    path: $warc
    format: warc
  clean:
    op: clean
    input: raw
    steps:
      - url_filter
      - extract: {favor: precision}
      - langid: {keep: [en], min_score: 0.65}
      - gopher_repetition
      - gopher_quality
      - c4: {filter_no_terminal_punct: false}
      - fineweb
YAML
  "$KILN" run "$W/clean-$s.yaml" --threads 2 --quiet --until raw >/dev/null
  /usr/bin/time -f "%e %M" -o "$W/time.txt" "$KILN" run "$W/clean-$s.yaml" --threads 2 --quiet --force clean >/dev/null 2>"$W/err.txt" \
    || { cat "$W/err.txt"; exit 1; }
  read -r t m < "$W/time.txt"
  python3 - "$W/work-$s/clean/manifest.json" "$t" "$m" "$s" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
c = m["stats"]["clean"]
t, rss, size = float(sys.argv[2]), int(sys.argv[3]) * 1024, sys.argv[4]
print(f"input {size}: {c['docs_in']} docs, {c['bytes_in']} bytes of text in; kept {c['kept']}; "
      f"clean {t:.1f}s ({c['bytes_in'] / 1e6 / t:.1f} MB/s); peak RSS {rss / 2**20:.0f} MiB "
      f"(manifest {m['peak_rss_bytes'] / 2**20:.0f} MiB)")
PY
done
