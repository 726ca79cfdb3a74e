#!/usr/bin/env python3
"""Builds a JSONL benchmark input of about SIZE_MB from ../shared/data/text.

The pool is real text: C4 documents, Wikipedia articles, and paragraphs of
the Gutenberg books and US speeches (about 14 MB). Each document joins one to
four pieces drawn at random (fixed seed), so documents do not repeat and no
tool wins by dictionary-encoding duplicates, as a real crawl would not let it.
Usage: make_jsonl.py DATA_DIR OUT SIZE_MB
"""
import json
import pathlib
import random
import sys

data, out, size_mb = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
docs = []
for line in (data / "text/c4-demo/c4_demo.jsonl").read_text().splitlines():
    docs.append(("c4", json.loads(line)["text"]))
for line in (data / "text/wiki-demo/wiki_demo.txt").read_text().splitlines():
    if line.strip():
        docs.append(("wiki", line))
for sub in ["nltk-gutenberg", "nltk-inaugural", "nltk-state_union"]:
    for f in sorted((data / "text" / sub).glob("*.txt")):
        text = f.read_bytes().decode("utf-8", errors="replace")
        for para in text.split("\n\n"):
            if len(para.strip()) > 40:
                docs.append((sub, para.strip()))
target = size_mb << 20
rng = random.Random(1234)
written, i = 0, 0
with out.open("w") as fh:
    while written < target:
        parts = [docs[rng.randrange(len(docs))] for _ in range(rng.randint(1, 4))]
        source, text = parts[0][0], "\n\n".join(p[1] for p in parts)
        line = json.dumps({"id": f"doc-{i}", "text": text, "source": source, "pieces": len(parts)}, ensure_ascii=False) + "\n"
        fh.write(line)
        written += len(line.encode())
        i += 1
print(f"{out}: {written / 2**20:.1f} MiB, {i} documents")
