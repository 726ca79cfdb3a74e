"""PyTorch reference for benches/train_step.rs: the same GPT-2 configs,
random tokens, AdamW (β 0.9/0.95, eps 1e-8, wd 0.1), grad clipping 1.0,
on N threads, in three modes: eager fp32, torch.compile fp32, bf16 autocast.

    /tmp/kiln-bench/venv/bin/python benches/train_step_torch.py [tiny small 124m 124m-1024]
        [--modes eager,compile,bf16] [--steps N] [--threads 2]

Prints tokens/s, ms/step and GFLOP/s with the same FLOP count as the Rust
bench (6·(12·L·C² + V·C) + 12·L·T·C per token), and the peak RSS.
"""

import argparse
import os
import resource
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

CONFIGS = {
    "tiny": dict(n_layer=4, n_head=4, n_embd=256, T=256, vocab=8192, B=8),
    "small": dict(n_layer=6, n_head=6, n_embd=384, T=256, vocab=8192, B=8),
    "124m": dict(n_layer=12, n_head=12, n_embd=768, T=256, vocab=50257, B=4),
    "124m-1024": dict(n_layer=12, n_head=12, n_embd=768, T=1024, vocab=50257, B=4),
}
# The 2-core peaks, unless the caller measured this CPU's
# (`train_step --peaks`; benches/train_sbs.sh passes them in).
PEAK_F32 = float(os.environ.get("PEAK_F32", 227.0))
PEAK_BF16 = float(os.environ.get("PEAK_BF16", 453.0))


def flops_per_token(c):
    L, C, V, T = c["n_layer"], c["n_embd"], c["vocab"], c["T"]
    return 6 * (12 * L * C * C + V * C) + 12 * L * T * C


def run(name, mode, steps):
    c = CONFIGS[name]
    cfg = GPT2Config(
        n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"], n_positions=c["T"], vocab_size=c["vocab"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    B, T = c["B"], c["T"]
    data = torch.randint(0, c["vocab"], (B, T + 1))
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def loss_fn(x, y):
        logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))

    if mode == "compile":
        loss_fn = torch.compile(loss_fn)

    def step():
        opt.zero_grad(set_to_none=True)
        if mode == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(x, y)
        else:
            loss = loss_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(2 if mode != "compile" else 3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    per = (time.perf_counter() - t0) / steps
    tok_s = B * T / per
    gf = flops_per_token(c) * tok_s / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:<10} {mode:<8} tokens/s {tok_s:>8.0f}  ms/step {per * 1e3:>8.1f}  GFLOP/s {gf:>6.1f} "
          f"({100 * gf / PEAK_F32:.1f}% of f32 peak, {100 * gf / PEAK_BF16:.1f}% of bf16 peak)  loss {loss:.3f}  "
          f"peak RSS {rss:.0f} MiB", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="*", default=["tiny", "small"])
    ap.add_argument("--modes", default="eager,compile,bf16")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, threads {a.threads}")
    for name in a.configs:
        steps = a.steps or (3 if CONFIGS[name]["n_layer"] >= 12 else 5)
        for mode in a.modes.split(","):
            run(name, mode, steps)


if __name__ == "__main__":
    main()
