// ok: test module
use super::*;
use crate::backend::Precision;
use crate::model::GptConfig;
use crate::train::ScheduleKind;

const EOS: u32 = 1;
const PAD: u32 = 2;

fn config() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        block_size: 32,
        vocab_size: 70,
        dropout: 0.0,
    }
}

fn gpt(seed: u64) -> Gpt {
    let mut m = Gpt::new(config(), Precision::F32, seed).unwrap(); // ok: test module
    let mut r = Rng::new(seed + 50);
    m.params.iter_mut().for_each(|p| *p += (r.normal() * 0.02) as f32);
    m
}

fn prompts(n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| (0..3 + i % 4).map(|_| 3 + (r.next_u64() % 67) as u32).collect())
        .collect()
}

/// Reward: the fraction of response tokens below 10 (EOS counts as one).
fn small_tokens() -> Reward {
    Reward::Rule(Box::new(|_, r: &[u32]| {
        r.iter().filter(|&&t| t < 10).count() as f32 / r.len().max(1) as f32
    }))
}

fn ppo(cfg: PpoConfig) -> Ppo {
    let policy = gpt(1);
    let reference = gpt(1);
    let value = Scorer::new(gpt(2), 3);
    Ppo::new(policy, reference, value, small_tokens(), cfg, EOS, PAD).unwrap() // ok: test module
}

fn cfg(lr: f32, steps: u64) -> PpoConfig {
    PpoConfig {
        response_length: 6,
        ppo_epochs: 2,
        num_minibatches: 2,
        kl_coef: 0.01,
        schedule: Schedule {
            max_lr: lr,
            min_lr_ratio: 1.0,
            warmup: 0,
            total: steps,
            kind: ScheduleKind::Constant,
        },
        seed: 11,
        ..PpoConfig::default()
    }
}

#[test]
fn the_first_minibatch_of_the_first_epoch_has_ratio_exactly_one() {
    let mut p = ppo(cfg(1e-3, 3));
    for _ in 0..2 {
        let rep = p.step(&prompts(8, 4), None).unwrap(); // ok: test module
        assert_eq!(rep.metrics["first_minibatch/ratio_max_dev"].as_f64(), Some(0.0));
        assert_eq!(rep.metrics["first_minibatch/approxkl"].as_f64(), Some(0.0));
        // Later minibatches saw updated weights: the mean ratio moved off 1.
        assert_ne!(rep.metrics["val/ratio"].as_f64(), Some(1.0));
    }
}

#[test]
fn batched_scoring_equals_one_row_at_a_time() {
    let mut p = ppo(cfg(1e-3, 1));
    let mut eps = p.rollout(&prompts(6, 5)).unwrap(); // ok: test module
    assert!(eps.iter().all(|e| !e.response.is_empty()));
    // Different lengths in one batch: right padding must not leak.
    assert!(eps.iter().map(|e| e.tokens().len()).collect::<std::collections::HashSet<_>>().len() > 1);
    let mut alone = eps.clone();
    p.score(&mut eps, &[(0..6).collect()]).unwrap(); // ok: test module
    let singles: Vec<Vec<usize>> = (0..6).map(|i| vec![i]).collect();
    p.score(&mut alone, &singles).unwrap(); // ok: test module
    for (a, b) in eps.iter().zip(&alone) {
        for (name, x, y) in [
            ("policy", &a.old_logp, &b.old_logp),
            ("reference", &a.ref_logp, &b.ref_logp),
            ("value", &a.values, &b.values),
        ] {
            assert_eq!(x.len(), a.response.len());
            for (u, w) in x.iter().zip(y) {
                assert!((u - w).abs() < 1e-5, "{name}: {u} vs {w}");
            }
        }
        // Policy and reference start equal, so the KL starts at 0.
        assert_eq!(a.old_logp, a.ref_logp);
    }
}

#[test]
fn rollouts_end_after_eos_and_the_penalty_applies_without_it() {
    let mut c = cfg(1e-3, 1);
    c.missing_eos_penalty = Some(1.0);
    let mut p = ppo(c);
    p.reward = Reward::Rule(Box::new(|_, _| 0.0));
    // Make EOS likely but not certain: raise its output embedding.
    let cfgm = p.policy.config().clone();
    let wte = p.policy.layout().range(crate::model::params::Kind::Wte);
    for x in &mut p.policy.params[wte.start + EOS as usize * cfgm.n_embd..wte.start + (EOS as usize + 1) * cfgm.n_embd] {
        *x *= 40.0;
    }
    let mut eps = p.rollout(&prompts(16, 6)).unwrap(); // ok: test module
    let mbs = p.minibatches(eps.len(), 0);
    p.score(&mut eps, &mbs).unwrap(); // ok: test module
    let with = eps.iter().filter(|e| e.has_eos).count();
    assert!(with > 0 && with < 16, "{with} of 16 ended with EOS");
    for e in &eps {
        assert_eq!(e.has_eos, e.response.last() == Some(&EOS));
        // Nothing after EOS.
        assert!(!e.response[..e.response.len() - 1].contains(&EOS));
        assert!(e.response.len() <= 6 + 1);
        assert_eq!(e.score, if e.has_eos { 0.0 } else { -1.0 });
    }
}

#[test]
fn ppo_raises_the_reward_while_the_kl_stays_bounded() {
    let steps = 14;
    let mut p = ppo(cfg(2e-3, steps));
    let mut scores = Vec::new();
    let mut kls = Vec::new();
    for s in 0..steps {
        let rep = p.step(&prompts(16, 100 + s), None).unwrap(); // ok: test module
        scores.push(rep.metrics["objective/scores"].as_f64().unwrap()); // ok: test module
        kls.push(rep.metrics["objective/kl"].as_f64().unwrap()); // ok: test module
        for k in ["policy/clipfrac_avg", "loss/value_avg", "val/response_length", "objective/entropy"] {
            assert!(rep.metrics[k].as_f64().is_some_and(f64::is_finite), "{k}");
        }
    }
    eprintln!("scores {scores:.3?}\nkl {kls:.3?}");
    let first = scores[..3].iter().sum::<f64>() / 3.0;
    let last = scores[steps as usize - 3..].iter().sum::<f64>() / 3.0;
    assert!(last > first + 0.2, "mean score {first:.3} → {last:.3}: {scores:?}");
    assert!(kls.iter().all(|k| k.is_finite() && *k < 50.0), "{kls:?}");
}

#[test]
fn ptx_mixes_the_pretraining_loss_in() {
    let mut c = cfg(1e-3, 1);
    c.ptx_coef = 0.5;
    let mut p = ppo(c);
    let mut r = Rng::new(9);
    let mut next = || {
        let ids: Vec<u32> = (0..2 * 9).map(|_| 3 + (r.next_u64() % 60) as u32).collect();
        let (mut inputs, mut targets) = (vec![], vec![]);
        for row in ids.chunks(9) {
            inputs.extend_from_slice(&row[..8]);
            targets.extend_from_slice(&row[1..]);
        }
        PtxBatch {
            inputs,
            targets,
            mask: None,
            b: 2,
            t: 8,
        }
    };
    let rep = p.step(&prompts(4, 7), Some(&mut next)).unwrap(); // ok: test module
    let l = rep.metrics["loss/ptx_avg"].as_f64().unwrap(); // ok: test module
    // A near-uniform model's cross-entropy is about ln 70.
    assert!((l - 70f64.ln()).abs() < 0.5, "{l}");
}

#[test]
fn a_reward_model_scores_at_the_last_token() {
    let mut p = ppo(cfg(1e-3, 1));
    p.reward = Reward::Model(Box::new(Scorer::new(gpt(4), 5)));
    let mut eps = p.rollout(&prompts(3, 8)).unwrap(); // ok: test module
    p.score(&mut eps, &[vec![0, 1, 2]]).unwrap(); // ok: test module
    let Reward::Model(rm) = &mut p.reward else { unreachable!() };
    for e in &eps {
        let ids = e.tokens();
        rm.forward(&ids, 1, ids.len()).unwrap(); // ok: test module
        assert!((rm.score_at(ids.len() - 1) - e.score).abs() < 1e-5);
    }
    assert!(
        Ppo::new(
            gpt(1),
            gpt(1),
            Scorer::new(gpt(2), 1),
            small_tokens(),
            PpoConfig {
                temperature: 0.0,
                ..cfg(1e-3, 1)
            },
            EOS,
            PAD
        )
        .is_err()
    );
}
