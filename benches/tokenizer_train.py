#!/usr/bin/env python3
"""Python `tokenizers` baseline for kiln's train_tokenizer: the same corpus
(text blocks from the given files, in order, each capped at DOC_CAP chars),
the same pre-tokenizer (GPT-4 split + byte-level), trainer and special tokens.

Usage: tokenizer_train.py VOCAB_SIZE FILE... ; prints the training seconds.
"""
import sys
import time

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

GPT4 = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
SPECIALS = ["<|bos|>", "<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
DOC_CAP = 10_000

vocab = int(sys.argv[1])
docs = []
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8", errors="strict").read()
    block = []
    for line in text.split("\n"):
        if line.strip():
            block.append(line.rstrip("\r"))
        elif block:
            docs.append("\n".join(block)[:DOC_CAP])
            block = []
    if block:
        docs.append("\n".join(block)[:DOC_CAP])
t0 = time.perf_counter()
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(GPT4), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
])
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator(docs, trainer=trainer)
print(f"{time.perf_counter() - t0:.3f} s, {len(docs)} docs, vocab {tok.get_vocab_size()}")
