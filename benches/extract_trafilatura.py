"""Python trafilatura on the extraction benchmark kiln's `extract` is measured on.

Runs trafilatura.extract over the 990 pages of ../shared/data/extraction/trafilatura
(evaldata.json + html/<file>.gz) in two modes, scores each with the snippet metric of
trafilatura's own tests/eval_common.py (whitespace-normalised substring match: a
"with" snippet found is a TP, missing a FN; a "without" snippet found is a FP,
absent a TN), and times it: RUNS full passes over the pages, median pages/s.

Modes (the options tests/evaluate.py uses: include_comments=False, include_tables=True,
include_formatting=False):
  default    trafilatura.extract(html_bytes, **opts)                       (fast=False: with fallbacks)
  precision  trafilatura.extract(html_bytes, favor_precision=True, **opts)

Parallelism: PROCS worker processes (multiprocessing.Pool, fork), pages handed out in
chunks of 4; each worker gets the raw bytes, as evaluate.py does, so decoding is timed.
Python threads would serialise on the GIL, so processes are the fair 2-core setup.

  python extract_trafilatura.py DATA_DIR [RUNS=5] [PROCS=2]
"""

import gzip
import json
import os
import re
import statistics
import sys
import time
from multiprocessing import Pool

import trafilatura

OPTS = {"include_comments": False, "include_tables": True, "include_formatting": False}
MODES = {
    "default": {},
    "precision": {"favor_precision": True},
}

PAGES = []  # filled before the pool forks, shared copy-on-write


def norm(text):
    """tests/eval_common.py's norm(): collapse whitespace runs, strip."""
    return re.sub(r"\s+", " ", text).strip()


def run_one(args):
    idx, mode = args
    try:
        return trafilatura.extract(PAGES[idx], **OPTS, **MODES[mode])
    except Exception:  # evaluate.py counts a crash as a full miss
        return None


def score(items, results):
    tp = fp = fn = tn = 0
    for item, result in zip(items, results):
        res = norm(result) if isinstance(result, str) else None
        t = sum(1 for w in item["with"] if res is not None and norm(w) in res)
        f = sum(1 for w in item["without"] if res is not None and norm(w) in res)
        tp += t
        fp += f
        fn += len(item["with"]) - t
        tn += len(item["without"]) - f
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return tp, fp, fn, tn, p, r, f1


def main():
    data = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    with open(os.path.join(data, "evaldata.json"), encoding="utf-8") as f:
        evaldata = json.load(f)
    items = list(evaldata.values())
    for item in items:
        with gzip.open(os.path.join(data, "html", item["file"] + ".gz"), "rb") as f:
            PAGES.append(f.read())
    total = sum(len(p) for p in PAGES)
    print(f"trafilatura {trafilatura.__version__}: {len(PAGES)} pages, {total} bytes; {procs} processes, {runs} runs")
    with Pool(procs) as pool:
        pool.map(run_one, [(0, "default")] * procs)  # warm-up: imports, lazy init
        for mode in MODES:
            rates = []
            results = None
            for run in range(runs):
                t = time.perf_counter()
                results = pool.map(run_one, [(i, mode) for i in range(len(PAGES))], chunksize=4)
                secs = time.perf_counter() - t
                rates.append(len(PAGES) / secs)
                print(f"  {mode} run {run + 1}: {secs:.2f} s, {rates[-1]:.1f} pages/s", flush=True)
            tp, fp, fn, tn, p, r, f1 = score(items, results)
            print(
                f"trafilatura {mode}: tp={tp} fp={fp} fn={fn} tn={tn} precision={p:.4f} recall={r:.4f} "
                f"f1={f1:.4f} pages/s(median of {runs})={statistics.median(rates):.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
