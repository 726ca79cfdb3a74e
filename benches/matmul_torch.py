"""Reference for benches/matmul.rs: the same linear-layer products in PyTorch
(oneDNN/MKL sgemm), f32, on the same shapes and row counts.

    /tmp/kiln-bench/venv/bin/python benches/matmul_torch.py [--threads N] [--reps N] [--model tiny|small|124m]

Per shape (C, OC): forward `x @ w.T`, input gradient `dy @ w`, weight
gradient `dy.T @ x`, each the median of --reps timed calls after one
warm-up call; then the total ms of one pass over all shapes, the figure
benches/matmul.rs prints as "all shapes, three products".
"""

import argparse
import statistics
import time

import torch

# (C, OC) per layer: qkv, attention projection, MLP up, MLP down, LM head;
# rows = B·T. Mirrors SHAPES, SHAPES_SMALL and SHAPES_124M in matmul.rs.
MODELS = {
    "tiny": ([(256, 768), (256, 256), (256, 1024), (1024, 256), (256, 8192)], 2048),
    "small": ([(384, 1152), (384, 384), (384, 1536), (1536, 384), (384, 8192)], 2048),
    "124m": ([(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50304)], 1024),
}


def median_time(f, reps):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--model", choices=sorted(MODELS), default="tiny")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes, rows = MODELS[args.model]
    print(f"torch {torch.__version__}, threads {args.threads}; {rows} rows; median of {args.reps}")
    total = 0.0
    for c, oc in shapes:
        x, w, dy = torch.randn(rows, c), torch.randn(oc, c), torch.randn(rows, oc)
        flop = 2.0 * rows * c * oc
        fwd = median_time(lambda: x @ w.T, args.reps)
        din = median_time(lambda: dy @ w, args.reps)
        dw = median_time(lambda: dy.T @ x, args.reps)
        total += fwd + din + dw
        print(f"torch f32       C {c:5} OC {oc:5}: fwd {flop / fwd / 1e9:6.1f} GFLOP/s  "
              f"dinp {flop / din / 1e9:6.1f}  dw {flop / dw / 1e9:6.1f}")
    print(f"torch f32       all shapes, three products: {total * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
