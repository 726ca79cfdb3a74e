//! The question–answer files, drawn from the item pools of [`super::qa`]
//! so that no held-out or RL question string occurs in any other file:
//! held-out and RL prompts are drawn first (so they get their share of
//! closed-book facts), then the SFT conversations and ranked lists (no
//! question twice), and the preference pairs (which may repeat an SFT or
//! ranked question).

use super::qa::{Item, UNHELPFUL, arith_items, fact_items, grounded_item, other_subject};
use super::world::{World, below, pick, shuffle};
use crate::model::rng::Rng;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Rows of each output file, as JSON values in file order.
#[derive(Debug, Clone, Default)]
pub struct Splits {
    /// `sft.jsonl`: chat records.
    pub sft: Vec<Value>,
    /// `prefs.jsonl`: prompt/chosen/rejected.
    pub prefs: Vec<Value>,
    /// `ranked.jsonl`: prompt + responses best to worst.
    pub ranked: Vec<Value>,
    /// `rl_prompts.jsonl`: chat records ending in the reference reply.
    pub rl: Vec<Value>,
    /// `heldout.jsonl`: as `rl`.
    pub heldout: Vec<Value>,
}

/// Row counts at scale 1.
const SFT: f64 = 1500.0;
const PREFS: f64 = 3000.0;
const RANKED: f64 = 300.0;
const RL: f64 = 500.0;
const HELDOUT: f64 = 200.0;

/// System messages some SFT conversations open with.
const SYSTEMS: [&str; 3] = [
    "You are a helpful assistant. Answer in one full sentence.",
    "You know the countries, towns and people of the Lakelands. Answer briefly and correctly.",
    "Answer each question with one short, correct sentence.",
];

/// How the SFT demonstrators hedge: on a hedge-prone phrasing (the last
/// three of each closed-book relation's five, "Tell me the capital of X.")
/// they answer [`HEDGE`] instead, `HEDGE_PER_10` times in ten.
///
/// Why the demonstrations are imperfect on purpose: InstructGPT's premise is
/// that people write worse answers than they can recognise, so comparisons
/// teach what demonstrations cannot. Here the demonstrators hedge on some
/// questions they could answer (the same facts are answered under the
/// other phrasings), the SFT model copies the habit, and the preference
/// pairs always rank a correct answer above an unhelpful one, so PPO
/// against the reward model has a habit to unlearn. The quickstart's
/// held-out accuracy of SFT vs PPO measures exactly that; wrong-vs-right
/// judging on facts and sums stays hard for a model this small (BENCHMARKS.md).
pub const HEDGE: &str = UNHELPFUL[0];
/// See [`HEDGE`].
const HEDGE_PER_10: usize = 7;
/// Rejected replies that a wrong-subject reply replaces, per ten pairs.
const OTHER_SUBJECT_PER_10: usize = 3;

/// Draws items family by family without ever repeating a question.
struct Pools<'a> {
    rng: Rng,
    w: &'a World,
    facts: Vec<Item>,
    arith: Vec<Item>,
    seen: BTreeSet<String>,
}

impl Pools<'_> {
    /// `n` items: about `fact` of them closed-book facts, `arith` arithmetic,
    /// the rest (and whatever an exhausted pool cannot give) grounded on `names`.
    fn draw(&mut self, n: usize, fact: f64, arith: f64, names: &[String]) -> Vec<Item> {
        let n_fact = (n as f64 * fact).round() as usize;
        let n_arith = (n as f64 * arith).round() as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n_fact {
            if let Some(it) = self.facts.pop() {
                out.push(it);
            }
        }
        for _ in 0..n_arith {
            if let Some(it) = self.arith.pop() {
                out.push(it);
            }
        }
        for it in &out {
            self.seen.insert(it.question.clone());
        }
        while out.len() < n {
            let it = grounded_item(&mut self.rng, self.w, names);
            if self.seen.insert(it.question.clone()) {
                out.push(it);
            }
        }
        shuffle(&mut self.rng, &mut out);
        out
    }
}

fn count(base: f64, scale: f64) -> usize {
    (base * scale).round().max(4.0) as usize
}

fn user(q: &str) -> Value {
    json!({"role": "user", "content": q})
}

fn assistant(a: &str) -> Value {
    json!({"role": "assistant", "content": a})
}

/// A prompt row: the question, the answer as the assistant's last message,
/// and the short reference.
fn prompt_row(id: String, it: &Item) -> Value {
    json!({
        "id": id,
        "messages": [user(&it.question), assistant(&it.answer())],
        "reference": it.reference,
        "family": it.family,
        "relation": it.relation,
    })
}

/// A correct but terse or malformed reply: the reference alone, or in a
/// sentence that is not the answer format.
fn terse(rng: &mut Rng, it: &Item) -> String {
    match below(rng, 3) {
        0 => format!("{}.", it.reference),
        1 => it.reference.to_lowercase(),
        _ => format!("answer {}", it.reference),
    }
}

/// Builds every file's rows from one seed.
pub fn build(w: &World, seed: u64, scale: f64) -> Splits {
    let mut rng = Rng::new(seed ^ 0x5150_1175);
    let all_facts = fact_items(w);
    let mut facts = all_facts.clone();
    let mut arith = arith_items();
    shuffle(&mut rng, &mut facts);
    shuffle(&mut rng, &mut arith);
    let mut pools = Pools {
        rng,
        w,
        facts,
        arith,
        seen: BTreeSet::new(),
    };
    let mut s = Splits::default();
    // Evaluation first: it must hold facts, and its grounded names are its own.
    for (i, it) in pools.draw(count(HELDOUT, scale), 0.35, 0.3, &w.heldout_names).iter().enumerate() {
        s.heldout.push(prompt_row(format!("heldout-{i:04}"), it));
    }
    for (i, it) in pools.draw(count(RL, scale), 0.35, 0.3, &w.train_names).iter().enumerate() {
        s.rl.push(prompt_row(format!("rl-{i:04}"), it));
    }
    let names = w.train_names.clone();
    // The preference pairs draw from their own copy of what evaluation and
    // RL left: they may repeat an SFT question (both are training data, and
    // a reward model needs many fact and sum pairs to judge them), never a
    // held-out or RL one.
    let mut pref_pools = Pools {
        rng: Rng::new(seed ^ 0x9E37_79B9),
        w,
        facts: pools.facts.clone(),
        arith: pools.arith.clone(),
        seen: pools.seen.clone(),
    };
    // SFT conversations have one to three turns: about 1.33 items each.
    let n_sft = count(SFT, scale);
    let sft_items = pools.draw(n_sft + n_sft / 3 + 8, 0.25, 0.3, &names);
    let ranked_items = pools.draw(count(RANKED, scale), 0.2, 0.3, &names);
    let pref_items = pref_pools.draw(count(PREFS, scale), 0.2, 0.3, &names);
    let rng = &mut pools.rng;
    // Draws added after the files' first version use their own streams, so
    // every other row stays as it was.
    let mut subject_rng = Rng::new(seed ^ 0x0B5E_C7ED);
    let mut hedge_rng = Rng::new(seed ^ 0x4ED6_E5A1);
    for (i, it) in ranked_items.iter().enumerate() {
        let wrong = it.answer_with(pick::<String>(rng, &it.wrong));
        let unhelpful = pick(rng, &UNHELPFUL).to_string();
        let (responses, kinds) = if below(rng, 4) == 0 {
            (vec![it.answer(), wrong, unhelpful], vec!["correct", "wrong", "unhelpful"])
        } else {
            (
                vec![it.answer(), terse(rng, it), wrong, unhelpful],
                vec!["correct", "terse", "wrong", "unhelpful"],
            )
        };
        s.ranked.push(json!({
            "id": format!("ranked-{i:04}"),
            "prompt": it.question,
            "responses": responses,
            "kinds": kinds,
            "reference": it.reference,
            "family": it.family,
        }));
    }
    for (i, it) in pref_items.iter().enumerate() {
        // Over half are wrong answers in the right format, the hard case
        // for a reward model; a quarter answer another question (without
        // them a reward model learns to like any true-sounding sentence,
        // and PPO answers "What is X's job?" with where X lives); the rest
        // are unhelpful.
        let roll = below(rng, 20);
        let (mut rejected, mut kind) = if roll < 4 {
            (pick(rng, &UNHELPFUL).to_string(), "unhelpful")
        } else if roll < 9 && !it.off_topic.is_empty() {
            (pick::<String>(rng, &it.off_topic).clone(), "off_topic")
        } else {
            (it.answer_with(pick::<String>(rng, &it.wrong)), "wrong")
        };
        // Some answer about the wrong subject instead: the error a small
        // policy makes most, and one a reward model can learn to see.
        if below(&mut subject_rng, 10) < OTHER_SUBJECT_PER_10
            && let Some(r) = other_subject(&mut subject_rng, it, &all_facts, &names)
        {
            (rejected, kind) = (r, "other_subject");
        }
        s.prefs.push(json!({
            "id": format!("pref-{i:04}"),
            "prompt": it.question,
            "chosen": it.answer(),
            "rejected": rejected,
            "rejected_kind": kind,
            "reference": it.reference,
            "family": it.family,
        }));
    }
    let mut items = sft_items.into_iter();
    for i in 0..n_sft {
        let turns = match below(rng, 20) {
            0..=14 => 1,
            15..=18 => 2,
            _ => 3,
        };
        let mut messages = Vec::new();
        if below(rng, 5) == 0 {
            messages.push(json!({"role": "system", "content": pick(rng, &SYSTEMS)}));
        }
        for it in items.by_ref().take(turns) {
            messages.push(user(&it.question));
            let hedge = it.hedge_prone && below(&mut hedge_rng, 10) < HEDGE_PER_10;
            messages.push(assistant(&if hedge { HEDGE.to_string() } else { it.answer() }));
        }
        if messages.iter().all(|m| m["role"] != "user") {
            break;
        }
        s.sft.push(json!({"id": format!("sft-{i:04}"), "messages": messages}));
    }
    s
}
