#!/usr/bin/env bash
# RLHF on a verifiable task (issue 6): grounded questions, whose prompt states
# the answer ("Bammal works as a sailor. Drefan works as a potter. What is
# the job of Bammal?"), so a reply can be checked against the prompt itself.
#
#   benches/rlhf_grounded.sh
#
# The quickstart (pipelines/quickstart.yaml, as committed) trains the
# pretrained model, the SFT model and the quickstart's own reward model; this
# script appends the grounded task's nodes to it:
# - chats_g / sft_g: SFT from the pretrained model on data/world's chats plus
#   the opening grounded question of six more `kiln synth` worlds' chats
#   (seeds 8-13), 1,000 steps. The quickstart's SFT model has seen 60 names
#   and answers a question about a new one with a name it knows ("Matist
#   works as a potter. What is the job of Matist?" -> "Mumto is a potter.");
#   thousands of names teach it to copy the one in the prompt. The
#   demonstrators hedge ("I am not sure.") on 7 in 10 counting questions
#   ("How many goats does Bammal have?"), as kiln synth's do on some
#   closed-book phrasings: InstructGPT's premise that people write worse
#   answers than they can recognise, which the pairs below then correct;
# - prefs_g / rm_g: a reward model from sft_g on data/world's 3,000
#   pairs plus every grounded pair of the six worlds (about 9,000 pairs),
#   1,500 steps. The quickstart's reward model sees
#   about 1,300 grounded pairs and judges 70% of the wrong grounded answers;
#   the extra pairs are what brings the judge to 90% (BENCHMARKS.md);
# - ppo_g: PPO from sft_g against rm_g on the grounded RL prompts of
#   the seven worlds (1,225), at the quickstart's settings (PPO_LR=1.0e-5,
#   PPO_STEPS=80 by default);
# - dpo_g: DPO from sft_g on prefs_g;
# - eval_*: the quickstart's SFT model (eval_sft_q), sft_g, PPO and DPO answer
#   the grounded held-out questions of the seven worlds (490; none is a
#   training prompt), scored by rm_g.
# Then benches/rlhf_judge.py prints the reward model's held-out accuracy by
# rejected kind and each model's accuracy by question family.
#
# KILN=path uses a prebuilt binary; BENCH_DIR (default /tmp/kiln-bench) holds
# the work directory; nodes it finds built there are kept. About 17 minutes
# on 2 cores from scratch. What it measured (PPO and DPO beat SFT by
# unlearning the hedge; neither learns which of two people a question is
# about) is in BENCHMARKS.md ("A verifiable task: grounded questions").
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_DIR:-/tmp/kiln-bench}/grounded
if [ -z "${KILN:-}" ]; then
  cargo build --release --quiet
  KILN=$PWD/target/release/kiln
fi
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$W"
extra=()
for s in 8 9 10 11 12 13; do
  "$KILN" synth --seed "$s" --out "$W/w$s" >/dev/null
  extra+=("$W/w$s")
done
python3 benches/rlhf_prefs.py grounded "$PWD/data/world" "$W" "${extra[@]}"
ln -sfn "$PWD/data" "$W/data"
{
  cat pipelines/quickstart.yaml
  cat <<YAML
  chats_g: {op: read, path: $W/sft_g.jsonl, format: chat}
  chat_tokens_g: {op: tokenize, input: chats_g, tokenizer: bpe}
  chat_rows_g: {op: pack, input: chat_tokens_g, seq_len: 128, mode: bestfit, crop: true, val_fraction: 0.05}
  sft_g: {op: sft, model: lm, input: chat_rows_g, batch_size: 16, max_steps: 1000, lr: 1.0e-3, warmup_steps: 10, eval_every: 100, precision: bf16}
  prefs_g: {op: read, path: $W/prefs_g.jsonl, format: preferences}
  rm_g: {op: reward_model, model: sft_g, input: prefs_g, val_fraction: 0.1, batch_size: 16, max_steps: 1500, lr: 5.0e-4, eval_every: 250, precision: bf16}
  rl_g_in: {op: read, path: $W/rl_g.jsonl, format: chat}
  rl_g: {op: prompts, input: rl_g_in}
  heldout_g_in: {op: read, path: $W/heldout_g.jsonl, format: chat}
  heldout_g: {op: prompts, input: heldout_g_in}
  ppo_g: {op: ppo, policy: sft_g, reward_model: rm_g, prompts: rl_g, steps: ${PPO_STEPS:-80}, batch_size: 16, num_minibatches: 2, ppo_epochs: 4, lr: ${PPO_LR:-1.0e-5}, kl_coef: 0.2, missing_eos_penalty: 1.0, response_length: 24, samples_every: 5, precision: bf16}
  dpo_g: {op: dpo, model: sft_g, input: prefs_g, val_fraction: 0.1, batch_size: 16, max_steps: 150, lr: 1.0e-4, eval_every: 50, precision: bf16}
  eval_sft_q: {op: eval_chat, model: sft, prompts: heldout_g, reward_model: rm_g, max_new_tokens: 24, precision: bf16}
  eval_sft_g: {op: eval_chat, model: sft_g, prompts: heldout_g, reward_model: rm_g, max_new_tokens: 24, precision: bf16}
  eval_ppo_g: {op: eval_chat, model: ppo_g, prompts: heldout_g, reward_model: rm_g, max_new_tokens: 24, precision: bf16}
  eval_dpo_g: {op: eval_chat, model: dpo_g, prompts: heldout_g, reward_model: rm_g, max_new_tokens: 24, precision: bf16}
YAML
} >"$W/grounded.yaml"
start=$(date +%s)
(cd "$W" && "$KILN" run grounded.yaml --set workdir=runs --quiet >summary.txt 2>log.txt)
echo "== $(($(date +%s) - start)) s wall"
cat "$W/summary.txt"
r=$W/runs
python3 benches/rlhf_judge.py pairs "$W/judge" "$r/rm_g/val_scores.jsonl"
python3 benches/rlhf_judge.py eval "$W/judge" "$r/eval_sft_q/eval.json" "$r/eval_sft_g/eval.json" "$r/eval_ppo_g/eval.json" "$r/eval_dpo_g/eval.json"
# PPO's curves: every 10th step's KL, score and reward.
python3 - "$r/ppo_g/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows[::10] + rows[-1:]:
    print(f"step {r['step']:4d}: objective/kl {r['objective/kl']:.3f}, objective/scores {r['objective/scores']:.3f}, "
          f"objective/rlhf_reward {r['objective/rlhf_reward']:.3f}, policy/approxkl_avg {r['policy/approxkl_avg']:.4f}")
PY
