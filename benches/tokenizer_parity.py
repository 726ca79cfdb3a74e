#!/usr/bin/env python3
"""Checks that a kiln tokenizer.json loads in Python and encodes as kiln does.

Usage: tokenizer_parity.py TOKENIZER_JSON CASES_JSON
CASES_JSON is a list of {"text": str, "ids": [int]} written by kiln's test
(ids from kiln's encoder, without BOS/EOS). Loads the file with
`tokenizers.Tokenizer.from_file` and with
`transformers.PreTrainedTokenizerFast(tokenizer_file=...)`; exits non-zero on
the first difference, printing it.
"""
import json
import sys

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

tok_path, cases_path = sys.argv[1], sys.argv[2]
cases = json.load(open(cases_path, encoding="utf-8"))
tk = Tokenizer.from_file(tok_path)
hf = PreTrainedTokenizerFast(tokenizer_file=tok_path)
bad = 0
for i, case in enumerate(cases):
    a = tk.encode(case["text"], add_special_tokens=False).ids
    b = hf.encode(case["text"], add_special_tokens=False)
    if a != case["ids"] or b != case["ids"]:
        bad += 1
        print(f"case {i}: {case['text'][:60]!r}\n kiln   {case['ids'][:20]}\n tokenizers {a[:20]}\n transformers {b[:20]}")
    if tk.decode(a, skip_special_tokens=False) != case["text"]:
        bad += 1
        print(f"case {i}: python decode does not round-trip")
print(f"{len(cases) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
