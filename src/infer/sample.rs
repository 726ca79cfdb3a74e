//! Choosing the next token from logits: greedy, or a draw after
//! temperature, top-k and top-p (nucleus) filtering, from a seeded RNG.
//!
//! The filters compose as in Hugging Face's `generate` (temperature, then
//! top-k, then top-p over what top-k kept). Top-p keeps the smallest set of
//! most likely tokens whose probability reaches `p` (Holtzman et al. 2020,
//! "The Curious Case of Neural Text Degeneration"); the most likely token is
//! always kept, so a tiny `p` is greedy decoding.

use super::InferError;
use crate::model::rng::Rng;

/// Sampling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// Softmax temperature; 0 is greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens; 0 turns the filter off.
    pub top_k: usize,
    /// Keep the most likely tokens up to cumulative probability `p`; 1 turns it off.
    pub top_p: f32,
    /// RNG seed: the same seed, model and prompts give the same tokens.
    pub seed: u64,
}

impl Default for SampleConfig {
    /// nanoGPT `sample.py`'s defaults: temperature 0.8, top-k 200.
    fn default() -> Self {
        SampleConfig {
            temperature: 0.8,
            top_k: 200,
            top_p: 1.0,
            seed: 1337,
        }
    }
}

impl SampleConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SampleConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    /// Rejects values outside their range, naming the flag.
    pub fn check(&self) -> Result<(), InferError> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(InferError::Config(format!(
                "--temperature {} must be a number ≥ 0 (0 = greedy)",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(InferError::Config(format!("--top-p {} must be in (0, 1] (1 = off)", self.top_p)));
        }
        Ok(())
    }

    /// Whether every draw is the argmax.
    fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }
}

/// The index of the largest logit (the first on ties); NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        // `!(x <= best)` would let NaN win; `>` does not.
        if x > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// A sampler with its own RNG stream and reusable candidate buffers.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SampleConfig,
    rng: Rng,
    /// (token, probability) candidates of the current draw.
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler for `cfg` whose RNG starts from `cfg.seed` mixed with
    /// `stream` (the sequence's index in a batch), so each sequence of a
    /// batch draws independently yet reproducibly.
    pub fn new(cfg: SampleConfig, stream: u64) -> Self {
        let mut mix = Rng::new(cfg.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rng = Rng::new(mix.next_u64());
        Sampler {
            cfg,
            rng,
            cand: Vec::new(),
        }
    }

    /// Draws a token id from `logits` (the real vocabulary only: a caller
    /// never passes padded columns). Non-finite logits are never drawn.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.is_greedy() || logits.len() <= 1 {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.cfg.temperature;
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, x)| x.is_finite())
                .map(|(i, &x)| (i as u32, x * inv_t)),
        );
        if self.cand.is_empty() {
            return argmax(logits);
        }
        let k = self.cfg.top_k;
        if k > 0 && k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            self.cand.truncate(k);
        }
        // Softmax over the candidates (max subtracted: no overflow).
        let max = self.cand.iter().fold(f32::NEG_INFINITY, |m, c| m.max(c.1));
        let mut total = 0.0f64;
        for c in self.cand.iter_mut() {
            c.1 = (c.1 - max).exp();
            total += c.1 as f64;
        }
        if self.cfg.top_p < 1.0 {
            total = nucleus(&mut self.cand, total, self.cfg.top_p as f64);
        }
        let mut u = self.rng.uniform() * total;
        for &(id, p) in &self.cand {
            u -= p as f64;
            if u < 0.0 {
                return id;
            }
        }
        // Rounding left u ≥ 0 after the last candidate: it is the draw.
        self.cand.last().map_or(0, |c| c.0)
    }
}

/// Keeps the most likely candidates whose (unnormalised) mass reaches
/// `p · total`, sorted by probability, and returns their mass.
///
/// Sorting a 50k vocabulary per token would cost as much as a layer of the
/// model, so the top candidates are found by partial selection, widening
/// the window ×4 until it holds the nucleus (usually at the first try).
fn nucleus(cand: &mut Vec<(u32, f32)>, total: f64, p: f64) -> f64 {
    let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let want = p * total;
    let n = cand.len();
    let mut m = 64.min(n);
    loop {
        if m < n {
            cand.select_nth_unstable_by(m - 1, by_prob);
        }
        let head = &mut cand[..m];
        let mass: f64 = head.iter().map(|c| c.1 as f64).sum();
        if mass >= want || m == n {
            head.sort_unstable_by(by_prob);
            break;
        }
        m = (m * 4).min(n);
    }
    let mut acc = 0.0f64;
    let mut keep = cand.len();
    for (i, c) in cand.iter().enumerate() {
        acc += c.1 as f64;
        if acc >= want {
            keep = i + 1;
            break;
        }
    }
    cand.truncate(keep.max(1));
    cand.iter().map(|c| c.1 as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> SampleConfig {
        SampleConfig {
            temperature,
            top_k,
            top_p,
            seed,
        }
    }

    /// Logits of the distribution [0.5, 0.3, 0.2] plus a token that can never be drawn.
    fn three() -> Vec<f32> {
        vec![0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln(), f32::NEG_INFINITY]
    }

    fn counts(c: SampleConfig, logits: &[f32], n: usize) -> Vec<usize> {
        let mut s = Sampler::new(c, 0);
        let mut out = vec![0; logits.len()];
        for _ in 0..n {
            out[s.sample(logits) as usize] += 1;
        }
        out
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0, 0.5]), 2);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1e30]), 1);
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        let n = 40_000;
        let c = counts(cfg(1.0, 0, 1.0, 3), &three(), n);
        // Standard error of a frequency at n = 40k is ≤ 0.0025; allow 4σ.
        for (got, want) in c.iter().zip([0.5, 0.3, 0.2, 0.0]) {
            let f = *got as f64 / n as f64;
            assert!((f - want).abs() < 0.01, "{c:?}");
        }
    }

    #[test]
    fn temperature_sharpens_and_zero_is_greedy() {
        let cold = counts(cfg(0.25, 0, 1.0, 4), &three(), 10_000);
        // p ∝ [0.5, 0.3, 0.2]^4 = [0.0625, 0.0081, 0.0016] → 0.869 for the first.
        let f = cold[0] as f64 / 10_000.0;
        assert!((f - 0.869).abs() < 0.02, "{cold:?}");
        assert_eq!(counts(cfg(0.0, 0, 1.0, 5), &three(), 100), vec![100, 0, 0, 0]);
    }

    #[test]
    fn top_k_keeps_the_k_most_likely() {
        assert_eq!(counts(cfg(5.0, 1, 1.0, 6), &three(), 200), vec![200, 0, 0, 0]);
        let two = counts(cfg(1.0, 2, 1.0, 7), &three(), 20_000);
        assert_eq!(two[2] + two[3], 0, "{two:?}");
        // Renormalised over the two kept: 0.5 / 0.8 = 0.625.
        assert!((two[0] as f64 / 20_000.0 - 0.625).abs() < 0.015, "{two:?}");
        // k at or above the vocabulary is no filter.
        let all = counts(cfg(1.0, 4, 1.0, 8), &three(), 20_000);
        assert!(all[2] > 3_000, "{all:?}");
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Cumulative mass: 0.5, 0.8, 1.0.
        for (p, kept) in [(0.01, 1), (0.49, 1), (0.51, 2), (0.79, 2), (0.81, 3), (1.0, 3)] {
            let c = counts(cfg(1.0, 0, p, 9), &three(), 5_000);
            let drawn = c.iter().filter(|&&n| n > 0).count();
            assert_eq!(drawn, kept, "top_p {p}: {c:?}");
        }
    }

    #[test]
    fn top_p_finds_a_nucleus_wider_than_the_first_window() {
        // 1000 equally likely tokens: the nucleus at p = 0.5 is 500 wide,
        // past the first 64-token window.
        let flat = vec![0.0f32; 1000];
        let c = counts(cfg(1.0, 0, 0.5, 10), &flat, 20_000);
        let drawn = c.iter().filter(|&&n| n > 0).count();
        assert!((450..=500).contains(&drawn), "{drawn} distinct tokens");
        // Ties are broken towards lower ids, so the nucleus is ids 0..500.
        assert!(c[500..].iter().all(|&n| n == 0));
    }

    #[test]
    fn same_seed_same_draws_and_streams_differ() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 20.0).collect();
        let draw = |seed, stream| {
            let mut s = Sampler::new(cfg(1.0, 50, 0.9, seed), stream);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(2, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
    }

    #[test]
    fn non_finite_logits_are_never_drawn() {
        let mut logits = vec![0.0f32; 64];
        logits[3] = f32::NAN;
        logits[7] = f32::INFINITY;
        logits[9] = f32::NEG_INFINITY;
        let c = counts(cfg(2.0, 0, 1.0, 11), &logits, 5_000);
        assert_eq!(c[3] + c[7] + c[9], 0);
    }

    #[test]
    fn bad_settings_are_rejected_by_name() {
        assert!(cfg(-1.0, 0, 1.0, 0).check().unwrap_err().to_string().contains("--temperature"));
        assert!(cfg(1.0, 0, 0.0, 0).check().unwrap_err().to_string().contains("--top-p"));
        assert!(cfg(1.0, 0, 1.5, 0).check().is_err());
        assert!(cfg(f32::NAN, 0, 1.0, 0).check().is_err());
        assert!(cfg(0.7, 40, 0.95, 0).check().is_ok());
    }
}
