#!/usr/bin/env bash
# Benchmark: kiln `extract` vs Python trafilatura 2.x on trafilatura's own
# evaluation set (990 real pages, ../shared/data/extraction/trafilatura):
# snippet precision / recall / F1 and pages/s, both on 2 cores.
#
#   benches/extract.sh [RUNS=5]
#
# trafilatura is installed into a venv under $BENCH_DIR (default /tmp/kiln-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/kiln-bench}
DATA=${DATA:-../shared/data/extraction/trafilatura}
mkdir -p "$BENCH_DIR"
if [ ! -x "$BENCH_DIR/venv/bin/python" ]; then
  python3 -m venv "$BENCH_DIR/venv"
fi
if ! "$BENCH_DIR/venv/bin/python" -c "import trafilatura" 2>/dev/null; then
  # justext (a trafilatura dependency) needs lxml's html cleaner, now a separate package.
  "$BENCH_DIR/venv/bin/pip" install --quiet "trafilatura==2.*" lxml_html_clean
fi
echo "== kiln (cargo bench --bench extract, release)"
cargo bench --quiet --bench extract -- "$RUNS"
echo "== Python trafilatura (2 processes)"
"$BENCH_DIR/venv/bin/python" benches/extract_trafilatura.py "$DATA" "$RUNS" 2
