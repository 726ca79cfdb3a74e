"""Baseline for benches/generate.rs: Hugging Face `generate` on a
random-init GPT-2 small (124M), batch 1, a 16-token prompt, 128 new tokens,
greedy, KV cache on, 2 torch threads; median of 5 runs, in f32 and bf16.

    /tmp/kiln-bench/venv/bin/python benches/generate_hf.py [THREADS]
"""

import statistics
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

PROMPT, NEW, RUNS = 16, 128, 5


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    cfg = GPT2Config()
    ids = torch.tensor([[i * 997 % cfg.vocab_size for i in range(PROMPT)]])
    print(f"HF transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
          f"GPT-2 124M, batch 1, prompt {PROMPT}, {NEW} new tokens, {threads} threads, median of {RUNS}")
    for dtype in (torch.float32, torch.bfloat16):
        model = GPT2LMHeadModel(cfg).to(dtype).eval()
        kwargs = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, use_cache=True,
                      pad_token_id=cfg.eos_token_id, attention_mask=torch.ones_like(ids))
        with torch.no_grad():
            model.generate(ids, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
            rates = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                out = model.generate(ids, **kwargs)
                dt = time.perf_counter() - t0
                assert out.shape[1] == PROMPT + NEW, out.shape
                rates.append(NEW / dt)
        print(f"{dtype}: {statistics.median(rates):7.1f} tokens/s (prompt included)")


if __name__ == "__main__":
    main()
