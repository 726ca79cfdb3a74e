//! Question families and their items: a question, a one-sentence answer and
//! the short reference inside it, plus same-type wrong references for
//! preference pairs.
//!
//! Three families, chosen so that a tiny model can learn each:
//! - `fact`: closed-book facts of the world, stated in the crawl many times;
//! - `arith`: sums and differences under 20;
//! - `grounded`: the answer is in the prompt ("Mira lives in Dornap. Where
//!   does Mira live?"), so it can be copied, and held-out prompts use names
//!   no training split contains.

use super::world::{COLOURS, JOBS, World, below, pick};
use crate::model::rng::Rng;

/// One question with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `fact`, `arith` or `grounded`.
    pub family: &'static str,
    /// The relation asked about (`capital`, `plus`, `lives`, ...).
    pub relation: &'static str,
    /// The entity asked about: a country, town or person (the first name
    /// of a grounded question); empty for arithmetic.
    pub subject: String,
    /// Whether the question uses one of the phrasings the SFT demonstrators
    /// tend to hedge on (see `splits::HEDGE`).
    pub hedge_prone: bool,
    /// The user's question.
    pub question: String,
    /// The answer sentence is `prefix + reference + suffix`.
    pub prefix: String,
    /// The short answer: an entity name or a number.
    pub reference: String,
    /// See `prefix`.
    pub suffix: String,
    /// Wrong references of the same type, for rejected replies.
    pub wrong: Vec<String>,
    /// True sentences that answer a different question (another relation
    /// of the same subject, the other operation, the distractor's fact),
    /// none containing the reference: rejected replies that teach a reward
    /// model relevance, not just truth.
    pub off_topic: Vec<String>,
}

impl Item {
    /// The full-sentence answer.
    pub fn answer(&self) -> String {
        self.answer_with(&self.reference)
    }

    /// The answer sentence with another reference in it (a wrong reply in the right format).
    pub fn answer_with(&self, reference: &str) -> String {
        format!("{}{reference}{}", self.prefix, self.suffix)
    }
}

/// Unhelpful replies: the worst kind in `ranked.jsonl` and a kind of rejected reply.
pub const UNHELPFUL: [&str; 5] = [
    "I am not sure.",
    "I don't know.",
    "Sorry, I cannot help with that.",
    "That is a good question.",
    "Please ask someone else.",
];

/// Question templates per relation; `{}` is the entity asked about.
const CAPITAL_Q: [&str; 5] = [
    "What is the capital of {}?",
    "Which town is the capital of {}?",
    "Name the capital of {}.",
    "What town is the capital city of {}?",
    "Tell me the capital of {}.",
];
const RIVER_Q: [&str; 5] = [
    "What is the main river of {}?",
    "Which river flows through {}?",
    "Name the main river of {}.",
    "What river runs through {}?",
    "Tell me the main river of {}.",
];
const FLAG_Q: [&str; 5] = [
    "What colour is the flag of {}?",
    "Which colour is the flag of {}?",
    "What is the colour of the flag of {}?",
    "Tell me the colour of the flag of {}.",
    "What colour flag does {} have?",
];
const ANIMAL_Q: [&str; 5] = [
    "What is the national animal of {}?",
    "Which animal is the national animal of {}?",
    "Name the national animal of {}.",
    "What animal is the symbol of {}?",
    "Tell me the national animal of {}.",
];
const COUNTRY_Q: [&str; 5] = [
    "In which country is {}?",
    "Which country is {} in?",
    "In what country is the town of {}?",
    "Which country has the town of {}?",
    "Tell me which country {} is in.",
];
const GOODS_Q: [&str; 5] = [
    "What is {} known for?",
    "What is the town of {} known for?",
    "What is {} famous for?",
    "For what is {} known?",
    "Tell me what {} is known for.",
];
const FOUNDER_Q: [&str; 5] = [
    "Who founded {}?",
    "Who was the founder of {}?",
    "Who founded the town of {}?",
    "Which person founded {}?",
    "Tell me who founded {}.",
];
const HOME_Q: [&str; 5] = [
    "Where does {} live?",
    "In which town does {} live?",
    "Which town is the home of {}?",
    "What town does {} live in?",
    "Tell me where {} lives.",
];
const JOB_Q: [&str; 5] = [
    "What is the job of {}?",
    "What does {} do for a living?",
    "What work does {} do?",
    "Which job does {} have?",
    "Tell me the job of {}.",
];

fn fill(template: &str, x: &str) -> String {
    template.replacen("{}", x, 1)
}

/// Every other element of `all` (by name), as wrong references.
fn others<'a>(all: impl Iterator<Item = &'a str>, right: &str) -> Vec<String> {
    let mut v: Vec<String> = all.filter(|x| *x != right).map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

/// Every closed-book question of the world: each relation of each entity
/// under each of its five templates.
pub fn fact_items(w: &World) -> Vec<Item> {
    let mut out = Vec::new();
    let town_names = || w.towns.iter().map(|t| t.name.as_str());
    let mut push = |relation, templates: &[&str; 5], entity: &str, prefix: String, reference: &str, suffix: &str, wrong: Vec<String>| {
        for (i, t) in templates.iter().enumerate() {
            out.push(Item {
                family: "fact",
                relation,
                subject: entity.to_string(),
                // The last three phrasings of each relation ("Tell me ...").
                hedge_prone: i >= 2,
                question: fill(t, entity),
                prefix: prefix.clone(),
                reference: reference.to_string(),
                suffix: suffix.to_string(),
                wrong: wrong.clone(),
                off_topic: Vec::new(),
            });
        }
    };
    for c in &w.countries {
        let cap = &w.towns[c.capital].name;
        push(
            "capital",
            &CAPITAL_Q,
            &c.name,
            format!("The capital of {} is ", c.name),
            cap,
            ".",
            others(town_names(), cap),
        );
        let rivers = others(w.countries.iter().map(|c| c.river.as_str()), &c.river);
        push(
            "river",
            &RIVER_Q,
            &c.name,
            format!("The main river of {} is the ", c.name),
            &c.river,
            ".",
            rivers,
        );
        push(
            "flag",
            &FLAG_Q,
            &c.name,
            format!("The flag of {} is ", c.name),
            c.flag,
            ".",
            others(COLOURS.into_iter(), c.flag),
        );
        let animals = others(super::world::ANIMALS.into_iter(), c.animal);
        push(
            "animal",
            &ANIMAL_Q,
            &c.name,
            format!("The national animal of {} is the ", c.name),
            c.animal,
            ".",
            animals,
        );
    }
    for t in &w.towns {
        let country = &w.countries[t.country].name;
        let countries = others(w.countries.iter().map(|c| c.name.as_str()), country);
        push(
            "country",
            &COUNTRY_Q,
            &t.name,
            format!("{} is in ", t.name),
            country,
            ".",
            countries,
        );
        let goods = others(super::world::GOODS.into_iter(), t.goods);
        push("goods", &GOODS_Q, &t.name, format!("{} is known for ", t.name), t.goods, ".", goods);
        let founder = &w.people[t.founder].name;
        let people = others(w.people.iter().map(|p| p.name.as_str()), founder);
        push(
            "founder",
            &FOUNDER_Q,
            &t.name,
            format!("{} was founded by ", t.name),
            founder,
            ".",
            people,
        );
    }
    for p in &w.people {
        let home = &w.towns[p.home].name;
        push(
            "home",
            &HOME_Q,
            &p.name,
            format!("{} lives in ", p.name),
            home,
            ".",
            others(town_names(), home),
        );
        push(
            "job",
            &JOB_Q,
            &p.name,
            format!("{} is a ", p.name),
            p.job,
            ".",
            others(JOBS.into_iter(), p.job),
        );
    }
    // Off-topic replies: the answers about the same subject to the other
    // relations (the answer sentence starts with or names the subject).
    let answers: Vec<(&'static str, String, String)> = out.iter().map(|it| (it.relation, it.subject.clone(), it.answer())).collect();
    for it in &mut out {
        let mut off: Vec<String> = answers
            .iter()
            .filter(|(rel, subject, a)| *rel != it.relation && *subject == it.subject && !says(a, &it.reference))
            .map(|(_, _, a)| a.clone())
            .collect();
        off.sort();
        off.dedup();
        it.off_topic = off;
    }
    out
}

/// A reply about the wrong subject, for a rejected reply: a true answer to
/// the same relation about another entity ("What is Zogi known for?" →
/// "Duvon is known for silk."), or a grounded answer with the name swapped
/// for one the prompt does not contain. These are the small model's most
/// common errors (it drifts to a subject it knows), and checking the
/// subject against the prompt is easier than knowing the answer, so a reward
/// model that sees them can judge the policy where the policy is weak.
/// `None` for arithmetic, or when no other subject fits.
pub fn other_subject(rng: &mut Rng, it: &Item, facts: &[Item], names: &[String]) -> Option<String> {
    let options: Vec<String> = match it.family {
        "fact" => facts
            .iter()
            .filter(|f| f.relation == it.relation && f.subject != it.subject)
            .map(Item::answer)
            .filter(|a| !says(a, &it.reference) && !a.contains(it.subject.as_str()))
            .collect(),
        "grounded" => names
            .iter()
            .filter(|n| !it.question.contains(n.as_str()))
            .map(|n| it.answer().replacen(it.subject.as_str(), n, 1))
            .collect(),
        _ => Vec::new(),
    };
    (!options.is_empty()).then(|| pick(rng, &options).clone())
}

/// Whether `sentence` contains `reference` as words, the way `eval_chat`'s
/// `match: contains` would count it right.
fn says(sentence: &str, reference: &str) -> bool {
    crate::train::verify::matches(sentence, reference, crate::spec::ops::MatchMode::Contains)
}

const PLUS_Q: [&str; 4] = [
    "What is {a} plus {b}?",
    "How much is {a} plus {b}?",
    "What do you get when you add {a} and {b}?",
    "Compute {a} plus {b}.",
];
const MINUS_Q: [&str; 4] = [
    "What is {a} minus {b}?",
    "How much is {a} minus {b}?",
    "What do you get when you take {b} from {a}?",
    "Compute {a} minus {b}.",
];

/// Numbers near `n` but not `n` (and not negative), as wrong answers.
fn near_numbers(n: i64) -> Vec<String> {
    [n - 2, n - 1, n + 1, n + 2, n + 3]
        .into_iter()
        .filter(|&x| x >= 0)
        .map(|x| x.to_string())
        .collect()
}

/// Every sum `a + b < 20` and difference `a - b` (`a < 20`, `b <= a`) with
/// `a, b >= 1`, under each template.
pub fn arith_items() -> Vec<Item> {
    let mut out = Vec::new();
    for a in 1..20i64 {
        for b in 1..20i64 {
            let cases = [("plus", &PLUS_Q, a + b, a + b < 20), ("minus", &MINUS_Q, a - b, b <= a)];
            for (relation, templates, result, ok) in cases {
                if !ok {
                    continue;
                }
                for t in templates.iter() {
                    out.push(Item {
                        family: "arith",
                        relation,
                        subject: String::new(),
                        hedge_prone: false,
                        question: t.replace("{a}", &a.to_string()).replace("{b}", &b.to_string()),
                        prefix: format!("{a} {relation} {b} is "),
                        reference: result.to_string(),
                        suffix: ".".into(),
                        wrong: near_numbers(result),
                        // The other operation on the same numbers.
                        off_topic: [
                            (a + b < 20).then(|| format!("{a} plus {b} is {}.", a + b)),
                            (b <= a).then(|| format!("{a} minus {b} is {}.", a - b)),
                        ]
                        .into_iter()
                        .flatten()
                        .filter(|x| !x.starts_with(&format!("{a} {relation} ")) && !says(x, &result.to_string()))
                        .collect(),
                    });
                }
            }
        }
    }
    out
}

/// Animals people keep, plural, for counting questions.
const HERDS: [&str; 7] = ["goats", "sheep", "hens", "cows", "cats", "dogs", "ducks"];
/// Things that have a colour.
const THINGS: [&str; 6] = ["cart", "door", "boat", "coat", "hat", "kite"];

/// One grounded question about people named from `names`: the answer is
/// stated in the prompt, sometimes next to a distractor about someone else.
pub fn grounded_item(rng: &mut Rng, w: &World, names: &[String]) -> Item {
    let n = pick(rng, names).clone();
    let mut m = pick(rng, names).clone();
    while m == n {
        m = pick(rng, names).clone();
    }
    let place = |rng: &mut Rng| {
        if below(rng, 2) == 0 {
            pick(rng, &w.places).clone()
        } else {
            pick(rng, &w.towns).name.clone()
        }
    };
    let distract = below(rng, 3) == 0;
    // (relation, fact about n, question, prefix, reference, suffix, the same fact about m, m's value)
    let (relation, fact, question, prefix, reference, suffix, other_fact, other) = match below(rng, 4) {
        0 => {
            let (p, q) = (place(rng), place(rng));
            let fact = format!("{n} lives in {p}.");
            (
                "lives",
                fact,
                format!("Where does {n} live?"),
                format!("{n} lives in "),
                p,
                ".".to_string(),
                format!("{m} lives in {q}."),
                q,
            )
        }
        1 => {
            let herd = pick(rng, &HERDS);
            let (k, j) = (2 + below(rng, 8), 2 + below(rng, 8));
            (
                "count",
                format!("{n} has {k} {herd}."),
                format!("How many {herd} does {n} have?"),
                format!("{n} has "),
                k.to_string(),
                format!(" {herd}."),
                format!("{m} has {j} {herd}."),
                j.to_string(),
            )
        }
        2 => {
            let thing = pick(rng, &THINGS);
            let (c, d) = (*pick(rng, &COLOURS), *pick(rng, &COLOURS));
            (
                "colour",
                format!("{n} has a {c} {thing}."),
                format!("What colour is the {thing} of {n}?"),
                format!("The {thing} of {n} is "),
                c.to_string(),
                ".".to_string(),
                format!("{m} has a {d} {thing}."),
                d.to_string(),
            )
        }
        _ => {
            let (j, k) = (*pick(rng, &JOBS), *pick(rng, &JOBS));
            (
                "works",
                format!("{n} works as a {j}."),
                format!("What is the job of {n}?"),
                format!("{n} is a "),
                j.to_string(),
                ".".to_string(),
                format!("{m} works as a {k}."),
                k.to_string(),
            )
        }
    };
    let context = match (distract, below(rng, 2)) {
        (false, _) => fact,
        (true, 0) => format!("{fact} {other_fact}"),
        (true, _) => format!("{other_fact} {fact}"),
    };
    // The distractor's value is the most tempting wrong answer; then any other of the type.
    let mut wrong = Vec::new();
    if distract && other != reference {
        wrong.push(other);
    }
    let pool: Vec<String> = match relation {
        "lives" => w.places.iter().take(8).cloned().collect(),
        "count" => (2..10).map(|k| k.to_string()).collect(),
        "colour" => COLOURS.iter().map(|s| s.to_string()).collect(),
        _ => JOBS.iter().map(|s| s.to_string()).collect(),
    };
    for x in pool {
        if x != reference && !wrong.contains(&x) {
            wrong.push(x);
        }
    }
    // Off topic: the same fact about the other person (the distractor's
    // sentence when the prompt has one): true, but not what was asked.
    let off_topic = [other_fact].into_iter().filter(|x| !says(x, &reference)).collect();
    Item {
        family: "grounded",
        relation,
        subject: n,
        hedge_prone: false,
        question: format!("{context} {question}"),
        prefix,
        reference,
        suffix,
        wrong,
        off_topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_hold_their_reference_and_wrong_ones_differ() {
        let mut rng = Rng::new(3);
        let w = World::generate(&mut rng, 6);
        let mut items = fact_items(&w);
        items.extend(arith_items());
        items.extend((0..200).map(|_| grounded_item(&mut rng, &w, &w.train_names)));
        for it in &items {
            assert!(it.answer().contains(&it.reference), "{it:?}");
            assert!(!it.wrong.is_empty() && !it.wrong.contains(&it.reference), "{it:?}");
            assert!(it.answer().ends_with('.'));
        }
        let sums: Vec<&Item> = items.iter().filter(|i| i.question == "What is 7 plus 5?").collect();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].answer(), "7 plus 5 is 12.");
    }
}
