#!/usr/bin/env python3
"""How well a reward model judges, and how well chat models answer, by question family.

  benches/rlhf_judge.py eval WORLD EVAL.json...   accuracy per family of `eval_chat`
                                                  outputs, how many answers hedge (open with
                                                  an unhelpful reply), and the AUC of their reward-model
                                                  score, correct answers against wrong ones
  benches/rlhf_judge.py pairs WORLD VAL_SCORES.jsonl...
                                                  a reward model's held-out accuracy per
                                                  rejected kind (`<node>/val_scores.jsonl`)

WORLD is a `kiln synth` directory (data/world): eval samples are joined with
heldout.jsonl, pair scores with prefs.jsonl, by `id`. BENCHMARKS.md ("Reward
model on the policy's own answers") quotes its output.
"""
import collections
import json
import os
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def auc(pos, neg):
    """P(score of a right answer > score of a wrong one), ties counting half."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def family(row):
    f = row["family"]
    if f == "grounded":
        # A distractor adds a second fact sentence before the question.
        f += "-distract" if len(row["messages"][0]["content"].split(". ")) > 2 else "-plain"
    return f


def evals(world, paths):
    held = {r["id"]: r for r in rows(os.path.join(world, "heldout.jsonl"))}
    # The world's unhelpful replies, as its preference file rejects them.
    unhelpful = {r["rejected"] for r in rows(os.path.join(world, "prefs.jsonl")) if r["rejected_kind"] == "unhelpful"}
    for path in paths:
        e = json.load(open(path))
        right, total = collections.Counter(), collections.Counter()
        # Grounded answers by relation (`count`, `lives`, ...): right, of, and hedged.
        rel = collections.defaultdict(lambda: [0, 0, 0])
        scores = collections.defaultdict(lambda: ([], []))
        hedged = exact = 0
        for s in e["samples"]:
            hedge = any(s["answer"].startswith(u) for u in unhelpful)
            hedged += hedge
            h = held[s["id"]]
            if h["family"] == "grounded":
                rel[h["relation"]][0] += bool(s["correct"])
                rel[h["relation"]][1] += 1
                rel[h["relation"]][2] += hedge
            # The whole reference reply, names included (`correct` only needs the reference value).
            exact += s["answer"].strip() == h["messages"][1]["content"]
            f = family(h)
            total[f] += 1
            right[f] += bool(s["correct"])
            if s.get("score") is not None:
                scores[h["family"]][0 if s["correct"] else 1].append(s["score"])
        counts = " ".join(f"{k} {right[k]}/{total[k]}" for k in sorted(total))
        aucs = "; ".join(
            f"{k} AUC {auc(p, n):.2f}" for k, (p, n) in sorted(scores.items()) if p and n
        )
        print(
            f"{path}: accuracy {e['accuracy']:.3f}, mean score {e['mean_score'] or 0:.3f}; {counts}; "
            f"{exact} answers equal the reference reply; {hedged} answers open with an unhelpful reply; {aucs}"
        )
        if rel:
            print("  grounded by relation (right/all, hedged): "
                  + "; ".join(f"{k} {r}/{n}, {hd}" for k, (r, n, hd) in sorted(rel.items())))


def pairs(world, paths):
    prefs = {r["id"]: r for r in rows(os.path.join(world, "prefs.jsonl"))}
    for path in paths:
        right, total = collections.Counter(), collections.Counter()
        for r in rows(path):
            p = prefs.get(r["id"])
            if p is None:  # a pair this world's file does not have (added by rlhf_prefs.py)
                continue
            k = p["rejected_kind"] if p["rejected_kind"] != "wrong" else "wrong-" + p["family"]
            total[k] += 1
            right[k] += r["scores"][0] > r["scores"][1]
        acc = sum(right.values()) / max(1, sum(total.values()))
        print(f"{path}: accuracy {acc:.3f}; " + " ".join(f"{k} {right[k]}/{total[k]}" for k in sorted(total)))


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in ("eval", "pairs"):
        sys.exit(__doc__)
    (evals if sys.argv[1] == "eval" else pairs)(sys.argv[2], sys.argv[3:])
