//! Learning-rate schedules: linear warmup, then cosine, linear, constant or
//! WSD (warmup–stable–decay, Hu et al. 2024 "MiniCPM"), floored at
//! `min_lr_ratio · max_lr`. Pure functions of the step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ScheduleKind {
    /// Half-cosine from max to min over the remaining steps.
    Cosine,
    /// Straight line from max to min.
    Linear,
    /// Stay at max.
    Constant,
    /// Stay at max, then decay linearly to min over the last
    /// `decay_fraction` of all steps.
    Wsd {
        /// Fraction of the total steps spent decaying (0..=1).
        decay_fraction: f32,
    },
}

/// A complete schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub max_lr: f32,
    /// Floor as a fraction of `max_lr`.
    pub min_lr_ratio: f32,
    /// Linear warmup steps (from max_lr/warmup up to max_lr).
    pub warmup: u64,
    /// Total optimizer steps.
    pub total: u64,
    /// Shape after warmup.
    pub kind: ScheduleKind,
}

impl Schedule {
    /// Learning rate at 0-based `step`. Warmup is nanoGPT's
    /// `max_lr·(step+1)/warmup`, so step 0 is not wasted at lr 0.
    pub fn lr(&self, step: u64) -> f32 {
        let (max, min) = (self.max_lr, self.max_lr * self.min_lr_ratio);
        if step < self.warmup {
            return max * (step + 1) as f32 / self.warmup as f32;
        }
        if step >= self.total {
            return if matches!(self.kind, ScheduleKind::Constant) { max } else { min };
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / span;
        let frac = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Wsd { decay_fraction } => {
                let decay_steps = (decay_fraction.clamp(0.0, 1.0) as f64 * self.total as f64).round();
                let decay_start = self.total as f64 - decay_steps;
                if (step as f64) < decay_start || decay_steps == 0.0 {
                    1.0
                } else {
                    1.0 - (step as f64 - decay_start) / decay_steps
                }
            }
        };
        min + (max - min) * frac as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> Schedule {
        Schedule {
            max_lr: 1.0,
            min_lr_ratio: 0.1,
            warmup: 10,
            total: 110,
            kind,
        }
    }

    #[test]
    fn warmup_boundaries() {
        let s = sched(ScheduleKind::Cosine);
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(9), 1.0);
        assert_eq!(s.lr(10), 1.0, "first post-warmup step is the peak");
    }

    #[test]
    fn cosine_midpoint_and_end() {
        let s = sched(ScheduleKind::Cosine);
        assert!((s.lr(60) - 0.55).abs() < 1e-6, "{}", s.lr(60));
        assert!((s.lr(109) - 0.1).abs() < 1e-3);
        assert_eq!(s.lr(110), 0.1);
        assert_eq!(s.lr(10_000), 0.1);
    }

    #[test]
    fn linear_and_constant() {
        let s = sched(ScheduleKind::Linear);
        assert!((s.lr(35) - 0.775).abs() < 1e-6);
        assert_eq!(sched(ScheduleKind::Constant).lr(100), 1.0);
        assert_eq!(sched(ScheduleKind::Constant).lr(500), 1.0);
    }

    #[test]
    fn wsd_is_flat_then_decays() {
        // 110 steps, decay over the last 20% = 22 steps starting at 88.
        let s = sched(ScheduleKind::Wsd { decay_fraction: 0.2 });
        assert_eq!(s.lr(50), 1.0);
        assert_eq!(s.lr(87), 1.0);
        assert_eq!(s.lr(88), 1.0);
        assert!((s.lr(99) - (0.1 + 0.9 * 0.5)).abs() < 1e-6, "{}", s.lr(99));
        assert_eq!(s.lr(110), 0.1);
    }

    #[test]
    fn no_warmup() {
        let s = Schedule {
            warmup: 0,
            ..sched(ScheduleKind::Linear)
        };
        assert_eq!(s.lr(0), 1.0);
    }
}
