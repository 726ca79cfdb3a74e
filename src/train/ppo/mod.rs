//! PPO against a reward model under a KL penalty to a frozen reference:
//! InstructGPT's RL stage (Ouyang et al. 2022), with the implementation
//! details that make it work as "The N+ implementation details of RLHF with
//! PPO" (Huang et al. 2024) lists them for TRL's `PPOTrainer`.
//!
//! One [`Ppo::step`]:
//! 1. **Rollout.** The policy samples a response to each prompt with the
//!    KV-cache decoder at `temperature` (no top-k/top-p), up to
//!    `response_length` tokens; the response ends after its EOS (`<|end|>`).
//! 2. **Scoring.** Policy and reference log-probabilities of the response
//!    tokens (logits divided by the same temperature), the value model's
//!    values, and the reward model's score at the last response token
//!    (minus `missing_eos_penalty` when there is no EOS). These forwards run
//!    in the same minibatches, same row order, as the first minibatches of
//!    the first PPO epoch, so there the new/old ratio is exactly 1.
//! 3. **Advantages** ([`gae`]): per-token `−β·KL` plus the score at the
//!    end, GAE, returns, whitened advantages.
//! 4. **Update**, `ppo_epochs` × `num_minibatches`: clipped surrogate for
//!    the policy, clipped value loss × `vf_coef` for the value model,
//!    optionally the pretraining loss × `ptx_coef` (PPO-ptx); one global
//!    gradient-norm clip over both models; Adam (eps 1e-5).
//!
//! Dropout is not implemented at all in kiln's model, so it is off
//! everywhere, as PPO needs (the ratio test in `tests` relies on it).

pub mod gae;
pub mod loss;

use self::gae::{KlController, KlEstimator, gae, token_rewards, whiten};
use self::loss::{policy_loss, value_loss};
use super::adamw::{AdamW, AdamWConfig, grad_norm};
use super::schedule::Schedule;
use super::seq::{SeqBatch, entropies, logprob_backward, token_logprobs};
use crate::infer::{Decoder, Finish, GenerateConfig, SampleConfig, generate};
use crate::model::Gpt;
use crate::model::head::Scorer;
use crate::model::rng::Rng;
use serde_json::{Map, Value, json};
use std::time::Instant;

/// PPO hyper-parameters (defaults: TRL's `PPOConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct PpoConfig {
    /// Sampling temperature of rollouts; every log-probability uses it too.
    pub temperature: f32,
    /// Most tokens per response.
    pub response_length: usize,
    /// Subtracted from the score of a response without EOS.
    pub missing_eos_penalty: Option<f32>,
    /// KL estimator of the per-token penalty.
    pub kl_estimator: KlEstimator,
    /// Initial β.
    pub kl_coef: f32,
    /// `Some((target, horizon))`: adaptive β.
    pub kl_target: Option<(f32, f32)>,
    /// GAE discount.
    pub gamma: f32,
    /// GAE λ.
    pub lam: f32,
    /// Policy ratio clip.
    pub cliprange: f32,
    /// Value clip around the rollout's values.
    pub cliprange_value: f32,
    /// Weight of the value loss.
    pub vf_coef: f32,
    /// Passes over each batch of rollouts.
    pub ppo_epochs: usize,
    /// Minibatches per pass.
    pub num_minibatches: usize,
    /// Learning rate by PPO step.
    pub schedule: Schedule,
    /// Adam settings (eps 1e-5, no weight decay).
    pub adam: AdamWConfig,
    /// Global gradient-norm clip over policy and value model (0 = off).
    pub max_grad_norm: f32,
    /// Weight of the pretraining loss (PPO-ptx) when a ptx batch is given.
    pub ptx_coef: f32,
    /// Sampling and shuffling seed.
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            temperature: 0.7,
            response_length: 53,
            missing_eos_penalty: None,
            kl_estimator: KlEstimator::K1,
            kl_coef: 0.05,
            kl_target: None,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            ppo_epochs: 4,
            num_minibatches: 1,
            schedule: Schedule {
                max_lr: 3e-6,
                min_lr_ratio: 0.0,
                warmup: 0,
                total: 1,
                kind: super::ScheduleKind::Linear,
            },
            adam: AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-5,
                weight_decay: 0.0,
            },
            max_grad_norm: 1.0,
            ptx_coef: 0.0,
            seed: 0,
        }
    }
}

/// A batch of pretraining rows for PPO-ptx: `[B·T]` inputs, targets and
/// an optional loss mask.
#[derive(Debug, Clone, Default)]
pub struct PtxBatch {
    /// Input ids.
    pub inputs: Vec<u32>,
    /// Next-token targets.
    pub targets: Vec<u32>,
    /// 1 where the loss counts.
    pub mask: Option<Vec<u8>>,
    /// Rows.
    pub b: usize,
    /// Columns.
    pub t: usize,
}

/// One prompt's rollout and everything computed from it.
#[derive(Debug, Clone, Default)]
pub struct Episode {
    /// Prompt tokens (chat template up to `<|assistant|>`).
    pub query: Vec<u32>,
    /// Response tokens, EOS included when drawn.
    pub response: Vec<u32>,
    /// Whether the response ended with EOS.
    pub has_eos: bool,
    /// Reward-model score (after the missing-EOS penalty).
    pub score: f32,
    /// Rollout policy log-probabilities per response token.
    pub old_logp: Vec<f32>,
    /// Reference log-probabilities.
    pub ref_logp: Vec<f32>,
    /// Value estimates per response token.
    pub values: Vec<f32>,
    /// Per-token KL estimates.
    pub kl: Vec<f32>,
    /// Whitened advantages.
    pub adv: Vec<f32>,
    /// Returns.
    pub ret: Vec<f32>,
}

impl Episode {
    /// The whole sequence, prompt then response.
    pub fn tokens(&self) -> Vec<u32> {
        let mut v = self.query.clone();
        v.extend_from_slice(&self.response);
        v
    }

    /// `(position, token)` of each response token in row `row` of `batch`.
    fn targets(&self, batch: &SeqBatch, row: usize) -> Vec<(usize, u32)> {
        let q = self.query.len();
        self.response
            .iter()
            .enumerate()
            .map(|(j, &tok)| (batch.at(row, q + j - 1), tok))
            .collect()
    }
}

/// The four models of RLHF and the optimizer state of the two that learn.
pub struct Ppo {
    /// The policy (starts as the SFT model).
    pub policy: Gpt,
    /// The frozen reference (the SFT model).
    pub reference: Gpt,
    /// The value model (starts as the reward model).
    pub value: Scorer,
    /// Where scores come from.
    pub reward: Reward,
    /// Settings.
    pub cfg: PpoConfig,
    /// β.
    pub kl: KlController,
    /// Steps taken.
    pub step: u64,
    eos: u32,
    pad: u32,
    policy_opt: AdamW,
    value_opt: AdamW,
    head_opt: AdamW,
}

/// A verifiable reward: a function of (prompt tokens, response tokens).
pub type RuleFn = dyn Fn(&[u32], &[u32]) -> f32 + Send + Sync;

/// Where a response's score comes from.
pub enum Reward {
    /// A frozen reward model, read at the last response token.
    Model(Box<Scorer>),
    /// A rule, e.g. exact match against a known answer.
    Rule(Box<RuleFn>),
}

/// What a step measured: TRL's metric names → values, plus the episodes.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// `objective/kl`, `objective/scores`, ... (see [`Ppo::step`]).
    pub metrics: Map<String, Value>,
    /// The step's episodes (prompt, response, score), for samples.
    pub episodes: Vec<Episode>,
}

fn num(v: f64) -> Value {
    json!(v)
}

fn mean(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = xs.into_iter().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

impl Ppo {
    /// Sets up PPO; `eos` ends a response (`<|end|>`), `pad` fills batches.
    pub fn new(policy: Gpt, reference: Gpt, value: Scorer, reward: Reward, cfg: PpoConfig, eos: u32, pad: u32) -> Result<Self, String> {
        if cfg.temperature <= 0.0 || !cfg.temperature.is_finite() {
            return Err(format!("temperature {} must be > 0: PPO divides logits by it", cfg.temperature));
        }
        if policy.config() != reference.config() {
            return Err("the reference model's architecture differs from the policy's".into());
        }
        let adam = cfg.adam;
        let policy_opt = AdamW::new(adam, policy.params.len(), policy.decay_ranges());
        let value_opt = AdamW::new(adam, value.gpt.params.len(), value.gpt.decay_ranges());
        let head_opt = AdamW::new(adam, value.w.len(), []);
        let kl = KlController {
            value: cfg.kl_coef,
            adaptive: cfg.kl_target,
        };
        Ok(Ppo {
            policy,
            reference,
            value,
            reward,
            cfg,
            kl,
            step: 0,
            eos,
            pad,
            policy_opt,
            value_opt,
            head_opt,
        })
    }

    /// Samples one response per prompt from the policy.
    pub fn rollout(&self, prompts: &[Vec<u32>]) -> Result<Vec<Episode>, String> {
        let t_max = self.policy.config().block_size;
        let mut dec = Decoder::new(&self.policy, prompts.len(), t_max, self.policy.precision()).map_err(|e| e.to_string())?;
        let gen_cfg = GenerateConfig {
            max_new_tokens: self.cfg.response_length,
            sampling: SampleConfig {
                temperature: self.cfg.temperature,
                top_k: 0,
                top_p: 1.0,
                seed: self.cfg.seed ^ (self.step + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            },
            stop: vec![self.eos],
        };
        let gens = generate(&mut dec, prompts, &gen_cfg, |_, _| true).map_err(|e| e.to_string())?;
        Ok(prompts
            .iter()
            .zip(gens)
            .map(|(q, g)| {
                let has_eos = g.finish == Finish::Stop(self.eos);
                let mut response = g.tokens;
                if has_eos {
                    response.push(self.eos);
                }
                Episode {
                    query: q.clone(),
                    response,
                    has_eos,
                    ..Default::default()
                }
            })
            .collect())
    }

    fn batch(&self, eps: &[Episode], rows: &[usize]) -> Result<SeqBatch, String> {
        let seqs: Vec<Vec<u32>> = rows.iter().map(|&i| eps[i].tokens()).collect();
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        SeqBatch::tight(&refs, self.pad)
    }

    /// The rows of each minibatch of PPO epoch `epoch`: a seeded
    /// permutation cut into `num_minibatches` pieces.
    fn minibatches(&self, n: usize, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng::new(self.cfg.seed ^ (self.step << 8) ^ epoch as u64 ^ 0x99);
        for i in (1..n).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let per = n.div_ceil(self.cfg.num_minibatches.max(1)).max(1);
        order.chunks(per).map(<[usize]>::to_vec).collect()
    }

    /// Log-probabilities, values and scores of the episodes, computed in
    /// the first epoch's minibatches.
    fn score(&mut self, eps: &mut [Episode], mbs: &[Vec<usize>]) -> Result<(), String> {
        let (v, vp, tau) = (
            self.policy.config().vocab_size,
            self.policy.config().padded_vocab(),
            self.cfg.temperature,
        );
        let err = |e: crate::model::ModelError| e.to_string();
        for rows in mbs {
            let batch = self.batch(eps, rows)?;
            let targets: Vec<Vec<(usize, u32)>> = rows.iter().enumerate().map(|(r, &i)| eps[i].targets(&batch, r)).collect();
            self.policy.forward(&batch.inputs, None, None, batch.b, batch.t).map_err(err)?;
            for (tg, &i) in targets.iter().zip(rows) {
                eps[i].old_logp = token_logprobs(self.policy.logits(), vp, v, tg, tau);
            }
            self.reference.forward(&batch.inputs, None, None, batch.b, batch.t).map_err(err)?;
            for (tg, &i) in targets.iter().zip(rows) {
                eps[i].ref_logp = token_logprobs(self.reference.logits(), vp, v, tg, tau);
            }
            self.value.forward(&batch.inputs, batch.b, batch.t).map_err(err)?;
            for (tg, &i) in targets.iter().zip(rows) {
                eps[i].values = tg.iter().map(|&(p, _)| self.value.score_at(p)).collect();
            }
            let scores: Vec<f32> = match &mut self.reward {
                Reward::Model(rm) => {
                    rm.forward(&batch.inputs, batch.b, batch.t).map_err(err)?;
                    (0..rows.len()).map(|r| rm.score_at(batch.last(r))).collect()
                }
                Reward::Rule(f) => rows.iter().map(|&i| f(&eps[i].query, &eps[i].response)).collect(),
            };
            for (&i, mut s) in rows.iter().zip(scores) {
                if !eps[i].has_eos
                    && let Some(p) = self.cfg.missing_eos_penalty
                {
                    s -= p;
                }
                eps[i].score = s;
            }
        }
        Ok(())
    }

    /// One PPO step on `prompts` (token ids ending with `<|assistant|>`),
    /// with an optional pretraining batch for PPO-ptx.
    ///
    /// Metrics (TRL's names): `objective/kl` (mean summed KL per
    /// response), `objective/entropy` (mean summed −log π of the sampled
    /// tokens), `objective/non_score_reward`, `objective/rlhf_reward`,
    /// `objective/scores`, `policy/approxkl_avg`, `policy/clipfrac_avg`,
    /// `policy/entropy_avg` (full-distribution entropy per token during the
    /// update), `loss/policy_avg`, `loss/value_avg`, `val/clipfrac_avg`,
    /// `val/ratio`, `val/ratio_var`, `val/num_eos_tokens`,
    /// `val/response_length`, `lr`, `kl_coef`, `loss/ptx_avg`; and timing:
    /// `time/rollout_s`, `time/score_s`, `time/update_s`,
    /// `tokens/rollout_per_s`, `tokens/update_per_s`; and, for the ratio
    /// test, `first_minibatch/ratio_max_dev` and `first_minibatch/approxkl`.
    pub fn step(&mut self, prompts: &[Vec<u32>], mut ptx: Option<&mut dyn FnMut() -> PtxBatch>) -> Result<StepReport, String> {
        if prompts.is_empty() {
            return Err("a PPO step needs at least one prompt".into());
        }
        let lr = self.cfg.schedule.lr(self.step);
        let t0 = Instant::now();
        let mut eps = self.rollout(prompts)?;
        let t_rollout = t0.elapsed().as_secs_f64();
        let mbs0 = self.minibatches(eps.len(), 0);
        let t1 = Instant::now();
        self.score(&mut eps, &mbs0)?;
        let t_score = t1.elapsed().as_secs_f64();

        // Rewards and advantages.
        let beta = self.kl.value;
        let mut advs = Vec::with_capacity(eps.len());
        for e in &mut eps {
            let (rewards, kl) = token_rewards(&e.old_logp, &e.ref_logp, e.score, beta, self.cfg.kl_estimator);
            let (adv, ret) = gae(&rewards, &e.values, self.cfg.gamma, self.cfg.lam);
            e.kl = kl;
            e.ret = ret;
            advs.push(adv);
        }
        whiten(&mut advs);
        for (e, a) in eps.iter_mut().zip(advs) {
            e.adv = a;
        }

        // The update.
        let t2 = Instant::now();
        let (v, vp, tau) = (
            self.policy.config().vocab_size,
            self.policy.config().padded_vocab(),
            self.cfg.temperature,
        );
        let err = |e: crate::model::ModelError| e.to_string();
        let mut acc: Map<String, Value> = Map::new();
        let mut sums = [0f64; 8]; // approxkl, clipfrac, pg loss, vf loss, vf clipfrac, ratio, ratio², entropy
        let mut ptx_sum = 0f64;
        let mut n_mb = 0usize;
        let mut update_tokens = 0usize;
        for epoch in 0..self.cfg.ppo_epochs {
            let mbs = if epoch == 0 {
                mbs0.clone()
            } else {
                self.minibatches(eps.len(), epoch)
            };
            for rows in &mbs {
                let batch = self.batch(&eps, rows)?;
                update_tokens += batch.lens.iter().sum::<usize>();
                let targets: Vec<(usize, u32)> = rows.iter().enumerate().flat_map(|(r, &i)| eps[i].targets(&batch, r)).collect();
                let flat = |f: fn(&Episode) -> &Vec<f32>| rows.iter().flat_map(|&i| f(&eps[i]).iter().copied()).collect::<Vec<f32>>();
                let (old, adv, ret, vold) = (flat(|e| &e.old_logp), flat(|e| &e.adv), flat(|e| &e.ret), flat(|e| &e.values));

                // Policy.
                self.policy.zero_grad();
                self.policy.forward(&batch.inputs, None, None, batch.b, batch.t).map_err(err)?;
                let new = token_logprobs(self.policy.logits(), vp, v, &targets, tau);
                let positions: Vec<usize> = targets.iter().map(|&(p, _)| p).collect();
                let ent = entropies(self.policy.logits(), vp, v, &positions, tau);
                let pl = policy_loss(&new, &old, &adv, self.cfg.cliprange);
                if epoch == 0 && n_mb == 0 {
                    let dev = new
                        .iter()
                        .zip(&old)
                        .map(|(a, b)| ((a - b).exp() - 1.0).abs())
                        .fold(0.0f32, f32::max);
                    acc.insert("first_minibatch/ratio_max_dev".into(), num(dev as f64));
                    acc.insert("first_minibatch/approxkl".into(), num(pl.approxkl as f64));
                }
                logprob_backward(self.policy.logits_mut(), vp, v, &targets, &pl.grads, tau);
                self.policy.backward_from_dlogits().map_err(err)?;
                if let Some(next) = ptx.as_mut()
                    && self.cfg.ptx_coef > 0.0
                {
                    let pb = next();
                    let l = self
                        .policy
                        .forward(&pb.inputs, Some(&pb.targets), pb.mask.as_deref(), pb.b, pb.t)
                        .map_err(err)?
                        .unwrap_or(f32::NAN);
                    self.policy.backward_scaled(self.cfg.ptx_coef).map_err(err)?;
                    ptx_sum += l as f64;
                }

                // Value.
                self.value.zero_grad();
                self.value.forward(&batch.inputs, batch.b, batch.t).map_err(err)?;
                let pred: Vec<f32> = positions.iter().map(|&p| self.value.score_at(p)).collect();
                let vl = value_loss(&pred, &vold, &ret, self.cfg.cliprange_value);
                let d: Vec<(usize, f32)> = positions.iter().zip(&vl.grads).map(|(&p, &g)| (p, g * self.cfg.vf_coef)).collect();
                self.value.backward(&d).map_err(err)?;

                // One clip over both models, as over TRL's policy-and-value wrapper.
                let norm =
                    (grad_norm(&self.policy.grads).powi(2) + grad_norm(&self.value.gpt.grads).powi(2) + grad_norm(&self.value.dw).powi(2))
                        .sqrt();
                if !norm.is_finite() || !pl.loss.is_finite() || !vl.loss.is_finite() {
                    return Err(format!(
                        "PPO diverged at step {}: policy loss {}, value loss {}, gradient norm {norm} \
                         (lower `lr`, raise `kl_coef`, or check the reward model)",
                        self.step + 1,
                        pl.loss,
                        vl.loss
                    ));
                }
                let clip = if self.cfg.max_grad_norm > 0.0 && norm > self.cfg.max_grad_norm {
                    self.cfg.max_grad_norm / norm
                } else {
                    1.0
                };
                self.policy_opt.update(&mut self.policy.params, &self.policy.grads, lr, clip);
                self.value_opt.update(&mut self.value.gpt.params, &self.value.gpt.grads, lr, clip);
                self.head_opt.update(&mut self.value.w, &self.value.dw, lr, clip);

                let ratios: Vec<f64> = new.iter().zip(&old).map(|(a, b)| ((a - b) as f64).exp()).collect();
                for (s, x) in sums.iter_mut().zip([
                    pl.approxkl as f64,
                    pl.clipfrac as f64,
                    pl.loss as f64,
                    vl.loss as f64,
                    vl.clipfrac as f64,
                    mean(ratios.iter().copied()),
                    mean(ratios.iter().map(|r| r * r)),
                    mean(ent.iter().map(|&h| h as f64)),
                ]) {
                    *s += x;
                }
                n_mb += 1;
            }
        }
        let t_update = t2.elapsed().as_secs_f64();

        // Metrics.
        let kl_sum = mean(eps.iter().map(|e| e.kl.iter().map(|&k| k as f64).sum::<f64>()));
        let scores = mean(eps.iter().map(|e| e.score as f64));
        let non_score = -(beta as f64) * kl_sum;
        let m = |i: usize| sums[i] / n_mb.max(1) as f64;
        let ratio = m(5);
        let mut metrics = Map::new();
        for (k, x) in [
            ("objective/kl", kl_sum),
            (
                "objective/entropy",
                mean(eps.iter().map(|e| -e.old_logp.iter().map(|&l| l as f64).sum::<f64>())),
            ),
            ("objective/non_score_reward", non_score),
            ("objective/rlhf_reward", non_score + scores),
            ("objective/scores", scores),
            ("policy/approxkl_avg", m(0)),
            ("policy/clipfrac_avg", m(1)),
            ("policy/entropy_avg", m(7)),
            ("loss/policy_avg", m(2)),
            ("loss/value_avg", m(3)),
            ("val/clipfrac_avg", m(4)),
            ("val/ratio", ratio),
            ("val/ratio_var", (m(6) - ratio * ratio).max(0.0)),
            ("val/num_eos_tokens", eps.iter().filter(|e| e.has_eos).count() as f64),
            ("val/response_length", mean(eps.iter().map(|e| e.response.len() as f64))),
            ("lr", lr as f64),
            ("kl_coef", beta as f64),
            ("time/rollout_s", t_rollout),
            ("time/score_s", t_score),
            ("time/update_s", t_update),
            (
                "tokens/rollout_per_s",
                eps.iter().map(|e| e.response.len()).sum::<usize>() as f64 / t_rollout.max(1e-9),
            ),
            ("tokens/update_per_s", update_tokens as f64 / t_update.max(1e-9)),
        ] {
            metrics.insert(k.into(), num(x));
        }
        if ptx.is_some() && self.cfg.ptx_coef > 0.0 {
            metrics.insert("loss/ptx_avg".into(), num(ptx_sum / n_mb.max(1) as f64));
        }
        metrics.extend(acc);
        if let Some((k, _)) = metrics.iter().find(|(_, v)| v.as_f64().is_none_or(|x| !x.is_finite())) {
            return Err(format!("PPO diverged at step {}: {k} is not finite", self.step + 1));
        }
        self.kl.update(kl_sum as f32, eps.len());
        self.step += 1;
        Ok(StepReport { metrics, episodes: eps })
    }
}

#[cfg(test)]
mod tests;
