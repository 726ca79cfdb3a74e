//! Per-token rewards, the KL penalty and its controller, generalized
//! advantage estimation and whitening: PPO's arithmetic between the rollout
//! and the update, on plain per-sequence vectors.
//!
//! The recipe is the one InstructGPT (Ouyang et al. 2022) describes and
//! "The N+ implementation details of RLHF with PPO" (Huang et al. 2024)
//! spells out for TRL: the reward model's score is added at the last
//! response token, every token pays `−β·KL` to the reference; GAE
//! (Schulman et al. 2016) with γ = 1, λ = 0.95; the returns are taken
//! *before* the advantages are whitened over all valid tokens of the batch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the per-token KL to the reference is estimated from the sampled
/// token's log-probabilities (Schulman, "Approximating KL divergence", 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// `log π − log π_ref`: unbiased, can be negative per token.
    #[default]
    K1,
    /// `(r − 1) − log r` with `r = π_ref / π`: unbiased, never negative, lower variance.
    K3,
}

impl KlEstimator {
    /// The estimate for one token.
    pub fn kl(self, logp: f32, ref_logp: f32) -> f32 {
        match self {
            KlEstimator::K1 => logp - ref_logp,
            KlEstimator::K3 => {
                let logr = ref_logp - logp;
                logr.exp() - 1.0 - logr
            }
        }
    }
}

/// The KL coefficient β: fixed, or adapted towards a target KL
/// (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
/// Preferences": `β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlController {
    /// The current β.
    pub value: f32,
    /// `Some((target, horizon))` adapts β after each batch.
    pub adaptive: Option<(f32, f32)>,
}

impl KlController {
    /// Updates β after a batch of `n` sequences whose mean summed KL was `kl`.
    pub fn update(&mut self, kl: f32, n: usize) {
        if let Some((target, horizon)) = self.adaptive {
            let err = (kl / target - 1.0).clamp(-0.2, 0.2);
            self.value *= 1.0 + err * n as f32 / horizon;
        }
    }
}

/// Per-token rewards of one response: `−β·kl_t` everywhere, plus `score`
/// at the last token. Returns (rewards, the KL terms).
pub fn token_rewards(logp: &[f32], ref_logp: &[f32], score: f32, beta: f32, est: KlEstimator) -> (Vec<f32>, Vec<f32>) {
    let kl: Vec<f32> = logp.iter().zip(ref_logp).map(|(&a, &b)| est.kl(a, b)).collect();
    let mut r: Vec<f32> = kl.iter().map(|&k| -beta * k).collect();
    if let Some(last) = r.last_mut() {
        *last += score;
    }
    (r, kl)
}

/// GAE over one response: `δ_t = r_t + γ·V_{t+1} − V_t` (with `V` after the
/// last token = 0: the episode ends there), `A_t = δ_t + γλ·A_{t+1}`.
/// Returns (advantages, returns = advantages + values).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0.0f32; n];
    let mut next_adv = 0.0f32;
    for t in (0..n).rev() {
        let next_v = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next_v - values[t];
        next_adv = delta + gamma * lam * next_adv;
        adv[t] = next_adv;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// Whitens every value of every sequence together: `(x − mean)/√(var + 1e-8)`
/// with the unbiased variance, as TRL's `masked_whiten` does over the valid
/// tokens of a batch.
pub fn whiten(seqs: &mut [Vec<f32>]) {
    let n: usize = seqs.iter().map(Vec::len).sum();
    if n < 2 {
        return;
    }
    let mean = seqs.iter().flatten().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = seqs.iter().flatten().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let inv = 1.0 / (var + 1e-8).sqrt();
    for x in seqs.iter_mut().flatten() {
        *x = ((*x as f64 - mean) * inv) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators() {
        assert!((KlEstimator::K1.kl(-1.0, -1.5) - 0.5).abs() < 1e-7);
        assert!((KlEstimator::K1.kl(-1.5, -1.0) + 0.5).abs() < 1e-7);
        // k3 is never negative and 0 only when the two agree.
        assert_eq!(KlEstimator::K3.kl(-0.7, -0.7), 0.0);
        for (a, b) in [(-1.0f32, -1.5f32), (-1.5, -1.0), (-3.0, -0.1)] {
            let logr = b - a;
            let want = logr.exp() - 1.0 - logr;
            assert!((KlEstimator::K3.kl(a, b) - want).abs() < 1e-6 && want > 0.0);
        }
    }

    #[test]
    fn the_score_lands_on_the_last_token() {
        let (r, kl) = token_rewards(&[-1.0, -2.0, -0.5], &[-1.2, -2.0, -0.1], 3.0, 0.1, KlEstimator::K1);
        assert_eq!(kl.len(), 3);
        assert!((r[0] - (-0.1 * 0.2)).abs() < 1e-6);
        assert_eq!(r[1], 0.0);
        assert!((r[2] - (3.0 - 0.1 * -0.4)).abs() < 1e-6);
    }

    #[test]
    fn gae_by_hand() {
        // γ = 1, λ = 0.5: δ = [0 + 2 − 1, 0 + 3 − 2, 4 + 0 − 3] = [1, 1, 1];
        // A_2 = 1, A_1 = 1 + 0.5, A_0 = 1 + 0.5·1.5.
        let (a, ret) = gae(&[0.0, 0.0, 4.0], &[1.0, 2.0, 3.0], 1.0, 0.5);
        assert_eq!(a, vec![1.75, 1.5, 1.0]);
        assert_eq!(ret, vec![2.75, 3.5, 4.0]);
        // λ = 1, γ = 1: the advantage is the reward-to-go minus the value.
        let (a, ret) = gae(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5], 1.0, 1.0);
        assert_eq!(a, vec![5.5, 4.5, 2.5]);
        assert_eq!(ret, vec![6.0, 5.0, 3.0]);
    }

    #[test]
    fn whitening_spans_sequences() {
        let mut s = vec![vec![1.0, 2.0], vec![3.0], vec![4.0, 5.0]];
        whiten(&mut s);
        let flat: Vec<f32> = s.concat();
        let mean: f32 = flat.iter().sum::<f32>() / 5.0;
        let var: f32 = flat.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{mean} {var}");
        assert!(s[0][0] < s[2][1]);
    }

    #[test]
    fn adaptive_beta_moves_towards_the_target() {
        let mut c = KlController {
            value: 0.1,
            adaptive: Some((6.0, 10000.0)),
        };
        c.update(12.0, 64); // KL too high: β rises by at most 20 %·n/horizon.
        assert!((c.value - 0.1 * (1.0 + 0.2 * 64.0 / 10000.0)).abs() < 1e-9);
        let before = c.value;
        c.update(3.0, 64);
        assert!(c.value < before);
        let mut fixed = KlController {
            value: 0.05,
            adaptive: None,
        };
        fixed.update(100.0, 64);
        assert_eq!(fixed.value, 0.05);
    }
}
