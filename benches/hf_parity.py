"""HF interop check (issue 5): kiln's GPT-2 checkpoints open in
`transformers` with the same logits, and checkpoints made by `transformers`
open in kiln with the same logits (max abs diff < 1e-4 on random tokens).

Run through benches/hf_parity.sh, which builds the Rust helper
(examples/hf_parity.rs) and provides a venv with torch + transformers:

    KILN_HF_HELPER=target/debug/examples/hf_parity python benches/hf_parity.py

Checks, each on random token ids:
  1. kiln → HF, a tiny and a small random kiln model (every parameter
     perturbed): GPT2LMHeadModel.from_pretrained(dir) logits vs kiln's full
     forward and kiln's KV-cached decoder.
  2. HF → kiln: a random GPT2LMHeadModel (perturbed too), saved with
     save_pretrained(safe_serialization=True), loaded by kiln.
Exits 1 if any difference reaches the tolerance.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

TOL = 1e-4
HELPER = os.environ.get("KILN_HF_HELPER", "target/debug/examples/hf_parity")


def kiln(*args):
    subprocess.run([HELPER, *map(str, args)], check=True)


def kiln_logits(model_dir, ids, work):
    b, t = ids.shape
    path = os.path.join(work, "ids.json")
    with open(path, "w") as f:
        json.dump({"b": b, "t": t, "ids": ids.reshape(-1).tolist()}, f)
    prefix = os.path.join(work, "out")
    kiln("logits", model_dir, path, prefix)
    full = np.fromfile(prefix + ".full.f32", dtype="<f4").reshape(b, t, -1)
    kv = np.fromfile(prefix + ".kv.f32", dtype="<f4").reshape(b, t, -1)
    return full, kv


def hf_logits(model_dir, ids):
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.from_numpy(ids).long()).logits.numpy()


def report(name, ref, others):
    ok = True
    for label, x in others.items():
        assert x.shape == ref.shape, (name, label, x.shape, ref.shape)
        d = float(np.abs(x - ref).max())
        scale = float(np.abs(ref).max())
        good = d < TOL
        ok &= good
        print(f"{name:<34} {label:<22} max |diff| {d:.2e} (logits up to {scale:.2f}) {'ok' if good else 'FAIL'}")
    return ok


def kiln_to_hf(name, shape, work, rng):
    n_layer, n_head, n_embd, block, vocab = shape
    d = os.path.join(work, name)
    kiln("save", d, n_layer, n_head, n_embd, block, vocab, 7)
    ids = rng.integers(0, vocab, size=(2, min(block, 64)), dtype=np.int64)
    hf = hf_logits(d, ids)
    full, kv = kiln_logits(d, ids, work)
    return report(f"kiln→HF {name} {shape}", hf, {"kiln forward": full, "kiln KV decoder": kv})


def hf_to_kiln(work, rng):
    cfg = GPT2Config(n_layer=3, n_head=4, n_embd=64, n_positions=128, vocab_size=777, bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
    d = os.path.join(work, "from_hf")
    model.save_pretrained(d, safe_serialization=True)
    ids = rng.integers(0, cfg.vocab_size, size=(2, 48), dtype=np.int64)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).logits.numpy()
    full, kv = kiln_logits(d, ids, work)
    return report("HF→kiln (3, 4, 64, 128, 777)", ref, {"kiln forward": full, "kiln KV decoder": kv})


def main():
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    ok = True
    with tempfile.TemporaryDirectory() as work:
        ok &= kiln_to_hf("tiny", (2, 2, 32, 64, 1000), work, rng)
        ok &= kiln_to_hf("small", (4, 4, 256, 256, 50257), work, rng)
        ok &= hf_to_kiln(work, rng)
    print("all ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
