"""Re-scores a kiln reward model's held-out sequences with transformers.

Usage: python benches/rm_parity.py RUNS/rm

Reads `val_scores.jsonl` (token ids and kiln's raw scores per held-out
record), loads the directory with `GPT2ForSequenceClassification`, scores the
same ids right-padded with `pad_token_id`, and prints one JSON line: the
records, the max |kiln - transformers| score difference, and the held-out
pairwise accuracy by each.
"""
import json
import sys

import torch
from transformers import GPT2ForSequenceClassification


def accuracy(scores):
    right = total = 0
    for s in scores:
        for i in range(len(s)):
            for j in range(i + 1, len(s)):
                right += s[i] > s[j]
                total += 1
    return right / max(total, 1)


def main(path):
    model = GPT2ForSequenceClassification.from_pretrained(path).eval()
    pad = model.config.pad_token_id
    recs = [json.loads(line) for line in open(f"{path}/val_scores.jsonl")]
    theirs, worst = [], 0.0
    with torch.no_grad():
        for r in recs:
            seqs = r["input_ids"]
            t = max(len(s) for s in seqs)
            ids = torch.tensor([s + [pad] * (t - len(s)) for s in seqs])
            got = model(input_ids=ids).logits[:, 0].tolist()
            worst = max(worst, max(abs(a - b) for a, b in zip(got, r["scores"])))
            theirs.append(got)
    print(json.dumps({
        "records": len(recs),
        "max_abs_diff": worst,
        "accuracy_kiln": accuracy([r["scores"] for r in recs]),
        "accuracy_transformers": accuracy(theirs),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
