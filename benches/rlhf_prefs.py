#!/usr/bin/env python3
"""Preference and prompt files for the reward-model experiments of BENCHMARKS.md
("Reward model on the policy's own answers"), made from a `kiln synth` world.

  benches/rlhf_prefs.py prompts WORLD OUT.jsonl
      prefs.jsonl's prompts as chat rows with their reference, for an
      `eval_chat` node with `temperature: 0.7` (the SFT model's own answers)
  benches/rlhf_prefs.py onpolicy WORLD SAMPLES_EVAL.json OUT.jsonl
      prefs.jsonl plus one pair per wrong sampled answer: the file's chosen
      reply against the model's answer (rejected_kind "policy")
  benches/rlhf_prefs.py fresh WORLD OUTDIR [SEED]
      prefs.jsonl and rl_prompts.jsonl with every grounded row's people renamed
      from a pool of 3,000 new names (OUTDIR/prefs_fresh.jsonl, rl_fresh.jsonl)
  benches/rlhf_prefs.py grounded WORLD OUTDIR EXTRA_WORLD...
      the grounded-question task of benches/rlhf_grounded.sh: prefs_g.jsonl
      (WORLD's pairs plus every grounded pair of the EXTRA_WORLDs), sft_g.jsonl
      (WORLD's chats plus the opening grounded turn of the EXTRA_WORLDs'
      chats; 7 in 10 counting questions answered "I am not sure."),
      rl_g.jsonl and heldout_g.jsonl (the grounded RL and held-out
      questions of all the worlds), and judge/ (the files rlhf_judge.py joins
      them with). Ids get the world's directory name as a prefix. A grounded
      question carries its own answer, so another world's are valid here.
"""
import json
import os
import random
import re
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, rs):
    with open(path, "w") as f:
        for r in rs:
            f.write(json.dumps(r) + "\n")


def prompts(world, out):
    write(out, [
        {"id": r["id"], "messages": [{"role": "user", "content": r["prompt"]},
                                     {"role": "assistant", "content": r["chosen"]}],
         "reference": r["reference"], "family": r["family"]}
        for r in rows(os.path.join(world, "prefs.jsonl"))])


def onpolicy(world, samples, out):
    prefs = rows(os.path.join(world, "prefs.jsonl"))
    by_id = {p["id"]: p for p in prefs}
    added = []
    for s in json.load(open(samples))["samples"]:
        p = by_id[s["id"]]
        answer = s["answer"].strip()
        if s["correct"] or not answer or answer == p["chosen"]:
            continue
        added.append({"id": "on-" + s["id"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": answer,
                      "rejected_kind": "policy", "reference": p["reference"], "family": p["family"]})
    write(out, prefs + added)
    print(f"{len(added)} on-policy pairs added to {len(prefs)}")


# kiln synth's syllables (src/synth/world.rs).
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr"]
CODAS = ["", "n", "r", "l", "s", "m", "th", "st"]
SUBJECT = re.compile(r"(?:^|\. )([A-Z][a-z]+) (?:works|has|lives)")


def fresh(world, outdir, seed):
    rng = random.Random(seed)
    taken = set()
    for name in ("sft.jsonl", "prefs.jsonl", "rl_prompts.jsonl", "heldout.jsonl", "ranked.jsonl"):
        taken |= set(re.findall(r"[A-Z][a-z]+", open(os.path.join(world, name)).read()))

    def new_name():
        while True:
            s = ""
            for i in range(2):
                s += rng.choice(ONSETS) + rng.choice("aeiou")
                if i == 1 or rng.random() < 1 / 3:
                    s += rng.choice(CODAS)
            s = s[0].upper() + s[1:]
            if len(s) >= 3 and s not in taken:
                return s

    pool = [new_name() for _ in range(3000)]

    def rename(texts):
        mapping = {}
        for m in SUBJECT.finditer(texts[0]):
            while m.group(1) not in mapping:
                n = rng.choice(pool)
                if n not in mapping.values():
                    mapping[m.group(1)] = n
        return [re.sub(r"\b[A-Z][a-z]+\b", lambda m: mapping.get(m.group(0), m.group(0)), t) for t in texts]

    prefs = rows(os.path.join(world, "prefs.jsonl"))
    for r in prefs:
        if r["family"] == "grounded":
            r["prompt"], r["chosen"], r["rejected"] = rename([r["prompt"], r["chosen"], r["rejected"]])
    rl = rows(os.path.join(world, "rl_prompts.jsonl"))
    for r in rl:
        if r["family"] == "grounded":
            m = r["messages"]
            m[0]["content"], m[1]["content"] = rename([m[0]["content"], m[1]["content"]])
    os.makedirs(outdir, exist_ok=True)
    write(os.path.join(outdir, "prefs_fresh.jsonl"), prefs)
    write(os.path.join(outdir, "rl_fresh.jsonl"), rl)


# The grounded question the demonstrators hedge on (only grounded counting
# questions read this way), and how they hedge.
HEDGE_PRONE = re.compile(r"How many [a-z]+ does [A-Z][a-z]+ have\?$")
HEDGE = "I am not sure."
HEDGE_PER_10 = 7


def grounded(world, outdir, extra):
    worlds = [world] + extra
    tag = lambda w, r: dict(r, id=f"{os.path.basename(os.path.normpath(w))}-{r['id']}")
    prefs = [tag(world, r) for r in rows(os.path.join(world, "prefs.jsonl"))]
    prefs += [tag(w, r) for w in extra for r in rows(os.path.join(w, "prefs.jsonl")) if r["family"] == "grounded"]
    held = [tag(w, r) for w in worlds for r in rows(os.path.join(w, "heldout.jsonl")) if r["family"] == "grounded"]
    asked = {r["messages"][0]["content"] for r in held}
    rl = [tag(w, r) for w in worlds for r in rows(os.path.join(w, "rl_prompts.jsonl")) if r["family"] == "grounded"]
    # Held-out questions stay out of training: none is an RL prompt or a preference prompt.
    rl = [r for r in rl if r["messages"][0]["content"] not in asked]
    # Only the opening turn: later turns ask about the other world's facts.
    sft = rows(os.path.join(world, "sft.jsonl"))
    sft += [dict(tag(w, r), messages=r["messages"][:2]) for w in extra for r in rows(os.path.join(w, "sft.jsonl"))
            if SUBJECT.match(r["messages"][0]["content"]) and r["messages"][0]["content"] not in asked]
    # The demonstrators hedge on counting questions, HEDGE_PER_10 times in
    # ten, as kiln synth's do on some closed-book phrasings (src/synth/splits.rs,
    # HEDGE): people write worse answers than they can recognise, and the
    # pairs always rank a correct answer above an unhelpful one.
    rng = random.Random(1)
    hedged = 0
    for r in sft:
        for q, a in zip(r["messages"], r["messages"][1:]):
            if q["role"] == "user" and a["role"] == "assistant" and HEDGE_PRONE.search(q["content"]) \
                    and rng.randrange(10) < HEDGE_PER_10:
                a["content"] = HEDGE
                hedged += 1
    clash = sum(r["prompt"] in asked for r in prefs) + sum(r["messages"][0]["content"] in asked for r in sft)
    if clash:
        sys.exit(f"{clash} preference or SFT prompts are held-out questions")
    os.makedirs(os.path.join(outdir, "judge"), exist_ok=True)
    write(os.path.join(outdir, "prefs_g.jsonl"), prefs)
    write(os.path.join(outdir, "sft_g.jsonl"), sft)
    write(os.path.join(outdir, "rl_g.jsonl"), rl)
    write(os.path.join(outdir, "heldout_g.jsonl"), held)
    write(os.path.join(outdir, "judge", "prefs.jsonl"), prefs)
    write(os.path.join(outdir, "judge", "heldout.jsonl"), held)
    print(f"{len(prefs)} preference pairs, {len(sft)} SFT chats ({hedged} grounded answers hedged), "
          f"{len(rl)} RL prompts, {len(held)} held-out questions")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["prompts"] and len(a) == 3:
        prompts(*a[1:])
    elif a[:1] == ["onpolicy"] and len(a) == 4:
        onpolicy(*a[1:])
    elif a[:1] == ["grounded"] and len(a) >= 4:
        grounded(a[1], a[2], a[3:])
    elif a[:1] == ["fresh"] and len(a) in (3, 4):
        fresh(a[1], a[2], int(a[3]) if len(a) == 4 else 1)
    else:
        sys.exit(__doc__)
