//! PPO throughput (issue 6): rollout tokens/s, update tokens/s and where a
//! step's time goes (generation, scoring with the four models, update).
//!
//! `cargo bench --bench ppo -- [tiny|small] [--steps N] [--batch N]
//!   [--prompt N] [--response N] [--epochs N] [--minibatches N]`
//!
//! `small` is issue 5's small config (6 layers, 6 heads, 384 wide, vocab
//! 8192, block 256); `tiny` is 4/4/256. Random weights and random prompt
//! tokens; the reward model is a scalar head on another random trunk, so
//! every model does its real work. The policy never draws `<|end|>` on
//! purpose (it is a random token), so responses run to `--response` tokens:
//! the worst case for generation. Medians over the steps after the first.

use kiln::backend::Precision;
use kiln::model::head::Scorer;
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};
use kiln::train::ScheduleKind;
use kiln::train::ppo::{Ppo, PpoConfig, Reward};
use kiln::train::schedule::Schedule;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (l, h, c) = if args.iter().any(|a| a == "tiny") {
        (4, 4, 256)
    } else {
        (6, 6, 384)
    };
    let name = if l == 4 { "tiny" } else { "small" };
    let steps: u64 = arg(&args, "--steps", 6);
    let batch: usize = arg(&args, "--batch", 16);
    let prompt_len: usize = arg(&args, "--prompt", 32);
    let response: usize = arg(&args, "--response", 53);
    let epochs: usize = arg(&args, "--epochs", 4);
    let minibatches: usize = arg(&args, "--minibatches", 1);
    let cfg = GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: c,
        block_size: 256,
        vocab_size: 8192,
        dropout: 0.0,
    };
    let gpt = |seed| Gpt::new(cfg.clone(), Precision::F32, seed).expect("config");
    let ppo_cfg = PpoConfig {
        response_length: response,
        ppo_epochs: epochs,
        num_minibatches: minibatches,
        schedule: Schedule {
            max_lr: 1e-5,
            min_lr_ratio: 1.0,
            warmup: 0,
            total: steps,
            kind: ScheduleKind::Constant,
        },
        seed: 1,
        ..PpoConfig::default()
    };
    // EOS = 0 and PAD = 1: ids a random model draws at chance only.
    let mut ppo = Ppo::new(
        gpt(1),
        gpt(1),
        Scorer::new(gpt(2), 2),
        Reward::Model(Box::new(Scorer::new(gpt(2), 3))),
        ppo_cfg,
        0,
        1,
    )
    .expect("ppo");
    println!(
        "PPO bench: {name} ({l} layers, {h} heads, {c} wide, vocab 8192), {} threads; {steps} steps × {batch} prompts of {prompt_len} tokens, response ≤ {response}, {epochs} epochs × {minibatches} minibatches",
        rayon::current_num_threads()
    );
    let mut rng = Rng::new(7);
    let keys = [
        "time/rollout_s",
        "time/score_s",
        "time/update_s",
        "tokens/rollout_per_s",
        "tokens/update_per_s",
        "val/response_length",
    ];
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    for s in 0..steps {
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|_| (0..prompt_len).map(|_| 2 + (rng.next_u64() % 8190) as u32).collect())
            .collect();
        let rep = ppo.step(&prompts, None).expect("step");
        let vals: Vec<f64> = keys.iter().map(|k| rep.metrics[*k].as_f64().unwrap_or(f64::NAN)).collect();
        println!(
            "step {}: rollout {:.2} s, score {:.2} s, update {:.2} s; {:.0} rollout tok/s, {:.0} update tok/s, response length {:.1}",
            s + 1,
            vals[0],
            vals[1],
            vals[2],
            vals[3],
            vals[4],
            vals[5]
        );
        if s > 0 || steps == 1 {
            for (c, v) in cols.iter_mut().zip(vals) {
                c.push(v);
            }
        }
    }
    let m: Vec<f64> = cols.into_iter().map(median).collect();
    let total = m[0] + m[1] + m[2];
    println!("\nmedian of {} steps:", (steps - 1).max(1));
    println!("| phase | seconds | share | tokens/s |");
    println!("|---|---|---|---|");
    println!(
        "| generation (KV-cache sampler) | {:.2} | {:.0}% | {:.0} |",
        m[0],
        100.0 * m[0] / total,
        m[3]
    );
    println!(
        "| scoring (policy, reference, value, reward forwards) | {:.2} | {:.0}% | |",
        m[1],
        100.0 * m[1] / total
    );
    println!(
        "| update ({epochs} epochs: policy + value forward/backward, Adam) | {:.2} | {:.0}% | {:.0} |",
        m[2],
        100.0 * m[2] / total,
        m[4]
    );
    println!("| step | {total:.2} | 100% | |");
}
