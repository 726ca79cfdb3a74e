//! The generated world: countries, towns and people with a handful of
//! relations each, named from one syllable inventory so that a byte-level
//! BPE of 1–2k tokens splits every name into a few pieces a tiny model can
//! learn to copy.

use crate::model::rng::Rng;
use std::collections::BTreeSet;

/// Colours of flags and of things in grounded questions.
pub const COLOURS: [&str; 8] = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"];
/// National animals (singular; sentences say "the otter").
pub const ANIMALS: [&str; 12] = [
    "otter", "fox", "bear", "heron", "wolf", "stag", "owl", "hare", "lynx", "crane", "eagle", "seal",
];
/// What a town trades in.
pub const GOODS: [&str; 12] = [
    "salt", "wool", "glass", "cheese", "timber", "copper", "honey", "rope", "paper", "silk", "wine", "fish",
];
/// Jobs; all begin with a consonant so that "a {job}" is always right.
pub const JOBS: [&str; 10] = [
    "baker",
    "smith",
    "weaver",
    "potter",
    "sailor",
    "farmer",
    "teacher",
    "miller",
    "carpenter",
    "healer",
];

const ONSETS: [&str; 16] = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr"];
const VOWELS: [&str; 5] = ["a", "e", "i", "o", "u"];
const CODAS: [&str; 8] = ["", "n", "r", "l", "s", "m", "th", "st"];

/// A country and its four facts.
#[derive(Debug, Clone)]
pub struct Country {
    /// Its name ("Varn").
    pub name: String,
    /// Index into [`World::towns`] of its capital.
    pub capital: usize,
    /// Its main river ("Sel"); sentences say "the Sel".
    pub river: String,
    /// The colour of its flag.
    pub flag: &'static str,
    /// Its national animal.
    pub animal: &'static str,
}

/// A town and its three facts.
#[derive(Debug, Clone)]
pub struct Town {
    /// Its name.
    pub name: String,
    /// Index into [`World::countries`].
    pub country: usize,
    /// What it is known for.
    pub goods: &'static str,
    /// Index into [`World::people`] of its founder.
    pub founder: usize,
}

/// A person of the world (first and family name) and two facts.
#[derive(Debug, Clone)]
pub struct Person {
    /// "Mira Dun".
    pub name: String,
    /// Index into [`World::towns`] of the town they live in.
    pub home: usize,
    /// Their job.
    pub job: &'static str,
}

/// The whole world, plus pools of single first names for grounded questions
/// (never used by world people, so a grounded "Where does Mira live?" cannot
/// be confused with a closed-book fact).
#[derive(Debug, Clone)]
pub struct World {
    /// Countries; each has [`TOWNS_PER_COUNTRY`] towns, the first its capital.
    pub countries: Vec<Country>,
    /// Towns.
    pub towns: Vec<Town>,
    /// People.
    pub people: Vec<Person>,
    /// First names for grounded questions in the training splits.
    pub train_names: Vec<String>,
    /// First names seen only in `heldout.jsonl` (and the crawl never).
    pub heldout_names: Vec<String>,
    /// Town-like place names for grounded questions, not towns of the world.
    pub places: Vec<String>,
}

/// Towns per country.
pub const TOWNS_PER_COUNTRY: usize = 3;

/// Picks one element of `xs`.
pub fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[below(rng, xs.len())]
}

/// Uniform in `0..n` (n > 0); the modulo bias is below 2^-50 for our n.
pub fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Fisher–Yates shuffle.
pub fn shuffle<T>(rng: &mut Rng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        xs.swap(i, below(rng, i + 1));
    }
}

/// Names that are never generated: English words a syllable pair can spell.
const NOT_NAMES: [&str; 12] = ["Bus", "Dim", "Gum", "Man", "Men", "Son", "Sun", "Ton", "Van", "Bin", "Pin", "Tin"];

/// Makes unique names of `syllables` syllables, skipping any in `taken`.
fn names(rng: &mut Rng, n: usize, syllables: (usize, usize), taken: &mut BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut tries = 0usize;
    while out.len() < n {
        tries += 1;
        let k = syllables.0 + below(rng, syllables.1 - syllables.0 + 1);
        let mut s = String::new();
        for i in 0..k {
            s.push_str(pick::<&str>(rng, &ONSETS));
            s.push_str(pick::<&str>(rng, &VOWELS));
            // Inner syllables stay open more often, so names read smoothly.
            if i + 1 == k || below(rng, 3) == 0 {
                s.push_str(pick::<&str>(rng, &CODAS));
            }
        }
        let mut name = s[..1].to_uppercase();
        name.push_str(&s[1..]);
        // Names one edit apart ("Nutes", "Nutas") are too easy to confuse for a tiny model.
        // Short names run out of distance quickly, so after many tries any new name will do.
        let distinct = tries > 50 * n || !taken.iter().any(|t| strsim::levenshtein(t, &name) <= 1);
        if name.len() >= 3 && !NOT_NAMES.contains(&name.as_str()) && distinct && taken.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

impl World {
    /// A world of `n_countries` countries (3 towns each, 4 people per country).
    pub fn generate(rng: &mut Rng, n_countries: usize) -> World {
        let n_countries = n_countries.max(2);
        let n_towns = n_countries * TOWNS_PER_COUNTRY;
        let n_people = n_countries * 4;
        let mut taken = BTreeSet::new();
        let country_names = names(rng, n_countries, (1, 2), &mut taken);
        let river_names = names(rng, n_countries, (1, 1), &mut taken);
        let town_names = names(rng, n_towns, (2, 2), &mut taken);
        let first = names(rng, n_people, (2, 2), &mut taken);
        let family = names(rng, n_people, (1, 2), &mut taken);
        let train_names = names(rng, 60, (2, 2), &mut taken);
        let heldout_names = names(rng, 30, (2, 2), &mut taken);
        let places = names(rng, 40, (2, 3), &mut taken);
        let mut towns: Vec<Town> = town_names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Town {
                name,
                country: i / TOWNS_PER_COUNTRY,
                goods: GOODS[(i + below(rng, 3)) % GOODS.len()],
                founder: 0,
            })
            .collect();
        let people: Vec<Person> = (0..n_people)
            .map(|i| Person {
                name: format!("{} {}", first[i], family[i]),
                home: below(rng, n_towns),
                job: JOBS[below(rng, JOBS.len())],
            })
            .collect();
        // Founders: a permutation prefix, so no person founded two towns.
        let mut order: Vec<usize> = (0..n_people).collect();
        shuffle(rng, &mut order);
        for (t, town) in towns.iter_mut().enumerate() {
            town.founder = order[t % n_people];
        }
        let countries = country_names
            .into_iter()
            .zip(river_names)
            .enumerate()
            .map(|(i, (name, river))| Country {
                name,
                capital: i * TOWNS_PER_COUNTRY,
                river,
                flag: COLOURS[below(rng, COLOURS.len())],
                animal: ANIMALS[(i * 5 + below(rng, 2)) % ANIMALS.len()],
            })
            .collect();
        World {
            countries,
            towns,
            people,
            train_names,
            heldout_names,
            places,
        }
    }

    /// The towns of country `c`, capital first.
    pub fn towns_of(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.towns.len()).filter(move |&t| self.towns[t].country == c)
    }

    /// The people living in town `t`.
    pub fn residents(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.people.len()).filter(move |&p| self.people[p].home == t)
    }

    /// The town person `p` founded, if any.
    pub fn founded_by(&self, p: usize) -> Option<usize> {
        self.towns.iter().position(|t| t.founder == p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_across_every_kind() {
        let w = World::generate(&mut Rng::new(7), 10);
        let mut all: Vec<String> = w.countries.iter().flat_map(|c| [c.name.clone(), c.river.clone()]).collect();
        all.extend(w.towns.iter().map(|t| t.name.clone()));
        all.extend(w.people.iter().map(|p| p.name.clone()));
        all.extend(w.train_names.iter().chain(&w.heldout_names).chain(&w.places).cloned());
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a name is used twice");
        // Each country's capital is one of its own towns, and no one founded two towns.
        for (i, c) in w.countries.iter().enumerate() {
            assert_eq!(w.towns[c.capital].country, i);
        }
        let mut founders: Vec<usize> = w.towns.iter().map(|t| t.founder).collect();
        founders.sort();
        founders.dedup();
        assert_eq!(founders.len(), w.towns.len());
    }
}
