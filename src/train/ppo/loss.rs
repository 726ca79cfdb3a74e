//! PPO's clipped losses (Schulman et al. 2017) over the valid response
//! tokens of a minibatch, with their derivatives: the policy loss with
//! respect to each new log-probability, the value loss with respect to each
//! predicted value. Means are over tokens (TRL's `masked_mean`).

/// The clipped surrogate and what it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyLoss {
    /// `mean(max(−A·ρ, −A·clip(ρ, 1 ± ε)))`.
    pub loss: f32,
    /// ∂loss/∂(new log-prob) per token.
    pub grads: Vec<f32>,
    /// Fraction of tokens where the clipped term won.
    pub clipfrac: f32,
    /// `½·mean((log ρ)²)`, TRL's `approxkl`.
    pub approxkl: f32,
    /// Mean ratio ρ.
    pub ratio: f32,
}

/// The policy loss for new and old log-probabilities and advantages, one
/// entry per valid token.
pub fn policy_loss(new: &[f32], old: &[f32], adv: &[f32], cliprange: f32) -> PolicyLoss {
    let n = new.len().max(1) as f64;
    let (mut loss, mut clipped, mut kl, mut ratio_sum) = (0f64, 0usize, 0f64, 0f64);
    let grads = new
        .iter()
        .zip(old)
        .zip(adv)
        .map(|((&lp, &olp), &a)| {
            let diff = lp - olp;
            let ratio = diff.exp();
            let pg1 = -a * ratio;
            let pg2 = -a * ratio.clamp(1.0 - cliprange, 1.0 + cliprange);
            kl += 0.5 * (diff as f64).powi(2);
            ratio_sum += ratio as f64;
            if pg2 > pg1 {
                // The clipped term is the max, and it is flat in ρ.
                clipped += 1;
                loss += pg2 as f64;
                0.0
            } else {
                loss += pg1 as f64;
                // ∂(−A·ρ)/∂log π = −A·ρ.
                (pg1 as f64 / n) as f32
            }
        })
        .collect();
    PolicyLoss {
        loss: (loss / n) as f32,
        grads,
        clipfrac: (clipped as f64 / n) as f32,
        approxkl: (kl / n) as f32,
        ratio: (ratio_sum / n) as f32,
    }
}

/// The clipped value loss and what it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueLoss {
    /// `½·mean(max((V − R)², (V_clip − R)²))`, `V_clip = V_old + clip(V − V_old, ±ε)`.
    pub loss: f32,
    /// ∂loss/∂V per token.
    pub grads: Vec<f32>,
    /// Fraction of tokens where the clipped term won.
    pub clipfrac: f32,
}

/// The value loss for predicted values, the rollout's values and the
/// returns, one entry per valid token.
pub fn value_loss(pred: &[f32], old: &[f32], returns: &[f32], cliprange_value: f32) -> ValueLoss {
    let n = pred.len().max(1) as f64;
    let (mut loss, mut clipped) = (0f64, 0usize);
    let grads = pred
        .iter()
        .zip(old)
        .zip(returns)
        .map(|((&v, &vo), &r)| {
            let vc = vo + (v - vo).clamp(-cliprange_value, cliprange_value);
            let (l1, l2) = ((v - r).powi(2), (vc - r).powi(2));
            if l2 > l1 {
                // Only when the clip is active, where V_clip does not move with V.
                clipped += 1;
                loss += l2 as f64;
                0.0
            } else {
                loss += l1 as f64;
                ((v - r) as f64 / n) as f32
            }
        })
        .collect();
    ValueLoss {
        loss: (0.5 * loss / n) as f32,
        grads,
        clipfrac: (clipped as f64 / n) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num_grad(f: impl Fn(&[f32]) -> f32, x: &[f32], k: usize) -> f32 {
        let (mut up, mut down) = (x.to_vec(), x.to_vec());
        up[k] += 1e-3;
        down[k] -= 1e-3;
        (f(&up) - f(&down)) / 2e-3
    }

    #[test]
    fn at_ratio_one_nothing_is_clipped_and_the_gradient_is_minus_the_advantage() {
        let lp = [-1.0f32, -2.0, -0.3];
        let adv = [0.5f32, -1.0, 2.0];
        let p = policy_loss(&lp, &lp, &adv, 0.2);
        assert_eq!((p.ratio, p.approxkl, p.clipfrac), (1.0, 0.0, 0.0));
        for (g, a) in p.grads.iter().zip(adv) {
            assert!((g + a / 3.0).abs() < 1e-7);
        }
        assert!((p.loss + (0.5 - 1.0 + 2.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn policy_gradient_matches_finite_differences_inside_and_outside_the_clip() {
        let old = [-1.0f32, -1.0, -1.0, -1.0];
        // Ratios 1.1 (inside), 1.5 with A > 0 (clipped), 0.6 with A < 0 (clipped), 0.6 with A > 0 (not clipped).
        let new = [-1.0 + 1.1f32.ln(), -1.0 + 1.5f32.ln(), -1.0 + 0.6f32.ln(), -1.0 + 0.6f32.ln()];
        let adv = [1.0f32, 1.0, -1.0, 1.0];
        let p = policy_loss(&new, &old, &adv, 0.2);
        assert!((p.clipfrac - 0.5).abs() < 1e-7);
        for k in 0..4 {
            let num = num_grad(|x| policy_loss(x, &old, &adv, 0.2).loss, &new, k);
            assert!((num - p.grads[k]).abs() < 1e-3, "token {k}: {num} vs {}", p.grads[k]);
        }
    }

    #[test]
    fn value_gradient_matches_finite_differences() {
        let old = [0.0f32, 0.0, 1.0];
        let ret = [1.0f32, -2.0, 1.0];
        // 0.1 inside the clip; 0.5 past it, away from the return (unclipped term larger);
        // 0.9 from 1.0 = −0.1 inside.
        let pred = [0.1f32, 0.5, 0.9];
        let v = value_loss(&pred, &old, &ret, 0.2);
        for k in 0..3 {
            let num = num_grad(|x| value_loss(x, &old, &ret, 0.2).loss, &pred, k);
            assert!((num - v.grads[k]).abs() < 1e-3, "token {k}: {num} vs {}", v.grads[k]);
        }
        // Moving away from the return past the clip: the unclipped term is larger and keeps its gradient.
        let away = value_loss(&[-0.5], &[0.0], &[1.0], 0.2);
        assert_eq!((away.grads.clone(), away.clipfrac), (vec![-1.5], 0.0));
        assert!((away.loss - 0.5 * 2.25).abs() < 1e-6);
        // Moving towards the return past the clip: the clipped term wins, no gradient.
        let past = value_loss(&[0.9], &[0.0], &[1.0], 0.2);
        assert_eq!((past.grads.clone(), past.clipfrac), (vec![0.0], 1.0));
        assert!((past.loss - 0.5 * 0.64).abs() < 1e-6);
    }
}
