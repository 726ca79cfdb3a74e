//! Parameters of `ppo` (RLHF) and `eval_chat` (answers to held-out prompts).

use super::RangeProblem;
use super::train::PrecisionName;
use crate::train::ppo::gae::KlEstimator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an answer is compared with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// The reference's words appear, in order and whole, in the answer (case and punctuation ignored).
    #[default]
    Contains,
    /// The whole answer equals the reference (case, surrounding spaces and a final period ignored).
    Exact,
    /// The last number in the answer equals the reference's number (GSM8K style).
    Number,
}

/// Learning-rate shape over PPO steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PpoSchedule {
    /// Linear decay to 0 over `steps` (TRL's default).
    #[default]
    Linear,
    /// Constant.
    Constant,
}

fn d_steps() -> u64 {
    100
}
fn d_batch() -> usize {
    16
}
fn d_one() -> usize {
    1
}
fn d_epochs() -> usize {
    4
}
fn d_lr() -> f32 {
    1e-5
}
fn d_temp() -> f32 {
    0.7
}
fn d_resp() -> usize {
    53
}
fn d_kl() -> f32 {
    0.05
}
fn d_horizon() -> f32 {
    10000.0
}
fn d_gamma() -> f32 {
    1.0
}
fn d_lam() -> f32 {
    0.95
}
fn d_clip() -> f32 {
    0.2
}
fn d_vf() -> f32 {
    0.1
}
fn d_ptx() -> f32 {
    1.0
}
fn d_grad() -> f32 {
    1.0
}
fn d_eps() -> f32 {
    1e-5
}
fn d_samples_every() -> u64 {
    10
}
fn d_new_tokens() -> usize {
    64
}

/// RLHF with PPO: a policy (the SFT model) learns from a reward model's
/// scores under a KL penalty to a frozen reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PpoParams {
    /// The `model` node to start from (the SFT model); it is also the frozen reference unless `reference` is set.
    pub policy: String,
    /// The `prompts` node rollouts answer.
    pub prompts: String,
    /// The reward `model` node (a `reward_model` output). Without it, `verify` scores answers against the prompts' `reference`.
    #[serde(default)]
    pub reward_model: Option<String>,
    /// A verifiable reward instead of a reward model: 1 when the answer matches the prompt's `reference`, else 0.
    #[serde(default)]
    pub verify: Option<MatchMode>,
    /// Another `model` node as the frozen reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// The `model` node the value model starts from (a reward model); default: `reward_model`, else a new head on the policy.
    #[serde(default)]
    pub value_model: Option<String>,
    /// A `packed` node of pretraining text for PPO-ptx.
    #[serde(default)]
    pub ptx: Option<String>,
    /// Weight of the pretraining loss when `ptx` is set.
    #[serde(default = "d_ptx")]
    pub ptx_coef: f32,
    /// Matmul precision of every model PPO runs (policy, reference, reward and value models).
    #[serde(default)]
    pub precision: PrecisionName,
    /// PPO steps (each: one batch of rollouts, then the update).
    #[serde(default = "d_steps")]
    pub steps: u64,
    /// Prompts per rollout batch.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Minibatches per PPO epoch.
    #[serde(default = "d_one")]
    pub num_minibatches: usize,
    /// Passes over each rollout batch.
    #[serde(default = "d_epochs")]
    pub ppo_epochs: usize,
    /// Adam learning rate (policy and value model).
    #[serde(default = "d_lr")]
    pub lr: f32,
    /// Learning-rate shape over the steps.
    #[serde(default)]
    pub schedule: PpoSchedule,
    /// Adam epsilon.
    #[serde(default = "d_eps")]
    pub adam_eps: f32,
    /// Global gradient-norm clip over policy and value model (0 = off).
    #[serde(default = "d_grad")]
    pub max_grad_norm: f32,
    /// Sampling temperature of rollouts; every log-probability divides the logits by it too.
    #[serde(default = "d_temp")]
    pub temperature: f32,
    /// Most tokens per response.
    #[serde(default = "d_resp")]
    pub response_length: usize,
    /// Subtracted from the score of a response that does not end with `<|end|>`.
    #[serde(default)]
    pub missing_eos_penalty: Option<f32>,
    /// Initial KL coefficient β.
    #[serde(default = "d_kl")]
    pub kl_coef: f32,
    /// KL estimator: `k1` (log-ratio) or `k3`.
    #[serde(default)]
    pub kl_estimator: KlEstimator,
    /// Adapt β towards this summed KL per response (Ziegler et al. 2019); unset = fixed β.
    #[serde(default)]
    pub kl_target: Option<f32>,
    /// Horizon of the adaptive β.
    #[serde(default = "d_horizon")]
    pub kl_horizon: f32,
    /// GAE discount γ.
    #[serde(default = "d_gamma")]
    pub gamma: f32,
    /// GAE λ.
    #[serde(default = "d_lam")]
    pub lam: f32,
    /// Policy ratio clip ε.
    #[serde(default = "d_clip")]
    pub cliprange: f32,
    /// Value clip.
    #[serde(default = "d_clip")]
    pub cliprange_value: f32,
    /// Weight of the value loss.
    #[serde(default = "d_vf")]
    pub vf_coef: f32,
    /// Write sample responses every N steps (and at the end).
    #[serde(default = "d_samples_every")]
    pub samples_every: u64,
}

impl PpoParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p: Vec<RangeProblem> = Vec::new();
        let mut need = |ok: bool, field: &str, msg: String| {
            if !ok {
                p.push((field.to_string(), msg));
            }
        };
        need(
            self.reward_model.is_some() != self.verify.is_some(),
            "reward_model",
            "set exactly one of `reward_model` (a reward model node) and `verify` (contains, exact or number)".into(),
        );
        need(self.steps >= 1, "steps", "must be at least 1".into());
        need(self.batch_size >= 1, "batch_size", "must be at least 1".into());
        need(
            self.num_minibatches >= 1 && self.num_minibatches <= self.batch_size,
            "num_minibatches",
            format!("{} must be in 1..=batch_size ({})", self.num_minibatches, self.batch_size),
        );
        need(self.ppo_epochs >= 1, "ppo_epochs", "must be at least 1".into());
        need(self.lr > 0.0 && self.lr.is_finite(), "lr", format!("{} must be positive", self.lr));
        need(self.adam_eps > 0.0, "adam_eps", "must be positive".into());
        need(self.max_grad_norm >= 0.0, "max_grad_norm", "must be at least 0".into());
        need(
            self.temperature > 0.0 && self.temperature.is_finite(),
            "temperature",
            format!("{} must be > 0 (PPO divides the logits by it)", self.temperature),
        );
        need(self.response_length >= 1, "response_length", "must be at least 1".into());
        need(self.kl_coef >= 0.0, "kl_coef", "must be at least 0".into());
        need(self.kl_target.is_none_or(|t| t > 0.0), "kl_target", "must be positive".into());
        need(self.kl_horizon > 0.0, "kl_horizon", "must be positive".into());
        need(
            (0.0..=1.0).contains(&self.gamma),
            "gamma",
            format!("{} is outside [0, 1]", self.gamma),
        );
        need((0.0..=1.0).contains(&self.lam), "lam", format!("{} is outside [0, 1]", self.lam));
        need(self.cliprange > 0.0, "cliprange", "must be positive".into());
        need(self.cliprange_value > 0.0, "cliprange_value", "must be positive".into());
        need(self.vf_coef >= 0.0, "vf_coef", "must be at least 0".into());
        need(self.ptx_coef >= 0.0, "ptx_coef", "must be at least 0".into());
        p
    }
}

/// Answers held-out prompts with a model and scores them against their
/// reference (and, optionally, with a reward model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalChatParams {
    /// The `model` node.
    pub model: String,
    /// The `prompts` node (rows without a `reference` count only for the reward model's score).
    pub prompts: String,
    /// A reward `model` node whose mean score is reported too.
    #[serde(default)]
    pub reward_model: Option<String>,
    /// How answers are compared with references.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// Most tokens per answer.
    #[serde(default = "d_new_tokens")]
    pub max_new_tokens: usize,
    /// 0 = greedy (the default, so the figure is reproducible); else sampled with `seed`.
    #[serde(default)]
    pub temperature: f32,
    /// Prompts evaluated, from the start (0 = all).
    #[serde(default)]
    pub limit: usize,
    /// Prompts generated together.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Matmul precision of the model and the reward model.
    #[serde(default)]
    pub precision: PrecisionName,
}

impl EvalChatParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if self.max_new_tokens == 0 {
            p.push(("max_new_tokens".into(), "must be at least 1".into()));
        }
        if self.batch_size == 0 {
            p.push(("batch_size".into(), "must be at least 1".into()));
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            p.push(("temperature".into(), format!("{} must be ≥ 0", self.temperature)));
        }
        p
    }
}
