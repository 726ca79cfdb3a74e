#!/usr/bin/env python3
"""Python `tokenizers` encode_batch baseline for benches/encode.rs.

Usage: encode_python.py TOKENIZER_JSON DOCS_JSON RUNS
Prints `median_seconds checksum`, where checksum is the sum over documents
of (index+1) * sum(ids) mod 2^61-1, which kiln prints for its own ids.
"""
import json
import sys
import time

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
docs = json.load(open(sys.argv[2], encoding="utf-8"))
runs = int(sys.argv[3])
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    enc = tok.encode_batch(docs, add_special_tokens=False)
    times.append(time.perf_counter() - t0)
times.sort()
check = 0
for i, e in enumerate(enc):
    check = (check + (i + 1) * sum(e.ids)) % ((1 << 61) - 1)
print(f"{times[len(times) // 2]:.4f} {check}")
