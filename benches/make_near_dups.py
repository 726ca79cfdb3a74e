#!/usr/bin/env python3
"""Writes a JSONL corpus of near duplicates for the dedup benchmark.

    make_near_dups.py DATA_DIR OUT.jsonl SIZE_MB [SEED]

The English texts of DATA_DIR/text are cut into ~3 kB documents (the
originals); then copies are written round after round until SIZE_MB, each
copy seeded and edited one of four ways: exact copy, 10% of words replaced
in runs of <= 50, 5% replaced one by one, or 40% replaced (no longer a
near duplicate). Every record is {"id", "text"}.
"""
import json
import os
import random
import sys


def documents(data):
    docs = []
    for d in ["nltk-gutenberg", "nltk-state_union", "nltk-inaugural", "tinyshakespeare", "wiki-demo", "wikitext-2"]:
        path = os.path.join(data, "text", d)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if name.startswith("README") or name.startswith("LICENSE"):
                continue
            with open(os.path.join(path, name), encoding="utf-8", errors="replace") as f:
                words = f.read().split()
            for i in range(0, len(words), 500):
                chunk = words[i : i + 500]
                if len(chunk) >= 100:
                    docs.append(chunk)
    return docs


def edit(words, frac, clustered, vocab, rng):
    words = list(words)
    target = round(len(words) * frac)
    done = 0
    changed = set()
    while done < target:
        run = min(50, target - done) if clustered else 1
        start = rng.randrange(0, len(words) - run + 1)
        for i in range(start, start + run):
            if i not in changed:
                changed.add(i)
                done += 1
                words[i] = vocab[rng.randrange(len(vocab))]
    return words


def main():
    data, out, size_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    docs = documents(data)
    vocab = [w for d in docs[:400] for w in d]
    limit = int(size_mb * 1e6)
    written = 0
    n = 0
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        rnd = 0
        while written < limit:
            for i, d in enumerate(docs):
                if rnd == 0:
                    words = d
                else:
                    kind = rng.randrange(4)
                    if kind == 0:
                        words = d
                    elif kind == 1:
                        words = edit(d, 0.10, True, vocab, rng)
                    elif kind == 2:
                        words = edit(d, 0.05, False, vocab, rng)
                    else:
                        words = edit(d, 0.40, False, vocab, rng)
                line = json.dumps({"id": f"r{rnd}-{i}", "text": " ".join(words)}) + "\n"
                f.write(line)
                written += len(line)
                n += 1
                if written >= limit:
                    break
            rnd += 1
    os.replace(out + ".tmp", out)
    print(f"{out}: {n} documents, {written} bytes, {len(docs)} originals", file=sys.stderr)


if __name__ == "__main__":
    main()
