#!/usr/bin/env bash
# HF round trip (issue 5): builds the kiln helper, makes sure a venv with
# torch (CPU wheel) and transformers exists, and runs benches/hf_parity.py.
#
# Not run in CI: the CPU torch wheel (~200 MB) plus transformers take
# minutes to download and install on every fresh runner, more than the
# check itself is worth there. Run it before resolving changes to
# src/model/hf.rs, src/model/ops or src/infer.
#
#   benches/hf_parity.sh            # venv at /tmp/kiln-bench/venv
#   VENV=/path/to/venv benches/hf_parity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/kiln-bench/venv}
if ! "$VENV/bin/python" -c "import torch, transformers, numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu
    "$VENV/bin/pip" install --quiet transformers numpy safetensors
fi
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --quiet --example hf_parity
KILN_HF_HELPER="$TARGET/debug/examples/hf_parity" "$VENV/bin/python" benches/hf_parity.py
