//! Generation for a batch of prompts of different lengths.
//!
//! All prompts go through the decoder in one call (each sequence keeps its
//! own length in the cache, positions start at 0 for every prompt); then
//! every unfinished sequence gets one token per step. A sequence finishes at
//! a stop token (EOS), after `max_new_tokens`, or when its context is full;
//! finished sequences are skipped, so they cost nothing in later steps.

use super::InferError;
use super::kv::Decoder;
use super::sample::{SampleConfig, Sampler};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Most tokens to add per sequence.
    pub max_new_tokens: usize,
    /// How each token is chosen.
    pub sampling: SampleConfig,
    /// Token ids that end a sequence (EOS, a chat template's end marker).
    /// The stop token itself is not part of the output.
    pub stop: Vec<u32>,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It drew this stop token.
    Stop(u32),
    /// It reached `max_new_tokens`.
    Length,
    /// Its context (`block_size`) is full.
    Context,
    /// The token callback asked to stop.
    Cancelled,
}

/// One sequence's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new tokens (prompt and stop token excluded).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: Finish,
}

/// Generates a continuation of each of `prompts` (at most
/// [`Decoder::batch`] of them, each non-empty), calling `on_token(seq, id)`
/// as each token is chosen; returning `false` from it stops every sequence.
pub fn generate(
    dec: &mut Decoder<'_>,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    mut on_token: impl FnMut(usize, u32) -> bool,
) -> Result<Vec<Generation>, InferError> {
    cfg.sampling.check()?;
    if prompts.len() > dec.batch() {
        return Err(InferError::Shape(format!(
            "{} prompts for a decoder of batch {}",
            prompts.len(),
            dec.batch()
        )));
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(InferError::Shape(format!(
            "prompt {i} is empty: a sequence needs at least one token to continue"
        )));
    }
    let n = prompts.len();
    let mut out: Vec<Generation> = (0..n)
        .map(|_| Generation {
            tokens: Vec::new(),
            finish: Finish::Length,
        })
        .collect();
    if n == 0 || cfg.max_new_tokens == 0 {
        return Ok(out);
    }
    dec.reset();
    let mut samplers: Vec<Sampler> = (0..n).map(|i| Sampler::new(cfg.sampling.clone(), i as u64)).collect();
    let mut active = vec![true; n];
    let mut next: Vec<Vec<u32>> = prompts.to_vec();
    next.resize(dec.batch(), Vec::new());
    loop {
        let chunks: Vec<&[u32]> = next.iter().map(|v| v.as_slice()).collect();
        dec.step(&chunks)?;
        let mut cancelled = false;
        for b in 0..n {
            next[b].clear();
            if !active[b] {
                continue;
            }
            let Some(logits) = dec.logits(b) else { continue };
            let tok = samplers[b].sample(logits);
            let g = &mut out[b];
            if cfg.stop.contains(&tok) {
                g.finish = Finish::Stop(tok);
                active[b] = false;
                continue;
            }
            g.tokens.push(tok);
            if !on_token(b, tok) {
                cancelled = true;
                break;
            }
            if g.tokens.len() >= cfg.max_new_tokens {
                g.finish = Finish::Length;
                active[b] = false;
            } else if dec.len(b) >= dec.t_max() {
                g.finish = Finish::Context;
                active[b] = false;
            } else {
                next[b].push(tok);
            }
        }
        if cancelled {
            for (g, a) in out.iter_mut().zip(&active) {
                if *a {
                    g.finish = Finish::Cancelled;
                }
            }
            return Ok(out);
        }
        if !active.iter().any(|&a| a) {
            return Ok(out);
        }
    }
}

/// Cuts a prompt that leaves no room in the context: when `prompt +
/// max_new_tokens` exceeds `block_size`, keeps the last
/// `max(block_size − max_new_tokens, block_size / 2)` tokens (the end of
/// the prompt is what the continuation depends on most). Returns the tokens
/// kept and how many were dropped from the front.
pub fn fit_prompt(prompt: &[u32], block_size: usize, max_new_tokens: usize) -> (&[u32], usize) {
    if prompt.len() + max_new_tokens <= block_size {
        return (prompt, 0);
    }
    let keep = block_size.saturating_sub(max_new_tokens).max(block_size / 2).max(1);
    if prompt.len() <= keep {
        return (prompt, 0);
    }
    let drop = prompt.len() - keep;
    (&prompt[drop..], drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_that_fit_are_kept_whole() {
        let p: Vec<u32> = (0..10).collect();
        assert_eq!(fit_prompt(&p, 16, 6), (&p[..], 0));
        // One token over: cut to block − max_new = 10 − 1... here 16 − 7 = 9.
        assert_eq!(fit_prompt(&p, 16, 7), (&p[1..], 1));
    }

    #[test]
    fn long_generations_keep_half_the_context_for_the_prompt() {
        let p: Vec<u32> = (0..100).collect();
        let (kept, dropped) = fit_prompt(&p, 64, 1000);
        assert_eq!((kept.len(), dropped), (32, 68));
        assert_eq!(kept[0], 68);
        // Shorter than the half: kept whole, generation stops at the context.
        assert_eq!(fit_prompt(&p[..20], 64, 1000).1, 0);
    }
}
