#!/usr/bin/env bash
# Benchmark: train_tokenizer vs Python `tokenizers` train_from_iterator with the
# same settings, on the same blocks of text, at vocab 8192 and 32768.
#
#   benches/tokenizer_train.sh [RUNS=5] [COPIES=1]
#
# The corpus: the valid UTF-8 .txt files under ../shared/data/text (blocks
# separated by blank lines), COPIES times over (7 copies ≈ 100 MB). kiln's time is the train_tokenizer node's own
# training time (manifest stats.train_tokenizer.train_seconds, the read and
# the JSON save excluded, as for Python).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
COPIES=${2:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=$(cd "${DATA:-../shared/data}" && pwd)
mkdir -p "$BENCH_DIR"
cargo build --release --quiet
KILN=$PWD/target/release/kiln
if ! "$BENCH_DIR/venv/bin/python" -c "import tokenizers" 2>/dev/null; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install --quiet "tokenizers==0.23.3"
fi
PY=$BENCH_DIR/venv/bin/python
# Files that are valid UTF-8 (kiln rejects the others; Python would fail on them).
files=$(for f in $(find "$DATA/text" -name '*.txt' | sort); do iconv -f utf-8 -t utf-8 "$f" >/dev/null 2>&1 && echo "$f"; done)
mkdir -p "$BENCH_DIR/corpus" && rm -f "$BENCH_DIR/corpus"/*
for c in $(seq "$COPIES"); do
  for f in $files; do ln -s "$f" "$BENCH_DIR/corpus/$c-$(echo "$f" | md5sum | cut -c1-8)-$(basename "$f")"; done
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo "corpus: $COPIES x $(echo "$files" | wc -l) files, $(cat "$BENCH_DIR"/corpus/* | wc -c) bytes"
median() { sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for vocab in 8192 32768; do
  : > "$BENCH_DIR/k.txt"; : > "$BENCH_DIR/p.txt"
  for i in $(seq "$RUNS"); do
    rm -rf "$BENCH_DIR/tokwork"
    cat > "$BENCH_DIR/tok.yaml" <<YAML
name: tokbench
workdir: $BENCH_DIR/tokwork
nodes:
  docs:
    op: read
    path: $BENCH_DIR/corpus
    format: text
    text_mode: block
  bpe:
    op: train_tokenizer
    input: docs
    vocab_size: $vocab
YAML
    "$KILN" run "$BENCH_DIR/tok.yaml" --threads 2 --quiet >/dev/null
    k=$(python3 -c "import json;print(json.load(open('$BENCH_DIR/tokwork/bpe/manifest.json'))['stats']['train_tokenizer']['train_seconds'])")
    p=$(RAYON_NUM_THREADS=2 "$PY" benches/tokenizer_train.py "$vocab" $(ls "$BENCH_DIR"/corpus/* | sort) | cut -d' ' -f1)
    echo "$k" >> "$BENCH_DIR/k.txt"; echo "$p" >> "$BENCH_DIR/p.txt"
    echo "vocab $vocab run $i: kiln ${k}s  python ${p}s"
  done
  awk -v k="$(median < "$BENCH_DIR/k.txt")" -v p="$(median < "$BENCH_DIR/p.txt")" -v v="$vocab" \
    'BEGIN{printf "vocab %d median: kiln %.2fs, python tokenizers %.2fs, kiln/python wall %.2fx\n", v, k, p, k/p}'
done
