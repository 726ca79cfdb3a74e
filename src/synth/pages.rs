//! The main content of the English pages: encyclopedia entries, travel
//! posts, news and arithmetic worksheets. Each states facts of the world in
//! varied sentences (the first variant of each is the answer format the Q/A
//! files use, so pretraining sees it too), mixed with neutral filler so that
//! pages read like prose and pass the quality filters.

use super::html::Block;
use super::world::{World, below, pick, shuffle};
use crate::model::rng::Rng;

/// Neutral English sentences, for prose around the facts.
const FILLER: [&str; 36] = [
    "The weather there is mild in spring and cold in winter.",
    "Many people walk along the river in the evening.",
    "The old market is busy on most days of the week.",
    "Visitors often say that the bread there is the best they have eaten.",
    "There is a small museum with maps and old tools.",
    "The roads are narrow, so most people go on foot or by bicycle.",
    "In the summer the days are long and the nights are short.",
    "A local school teaches children to read, write and count.",
    "The houses are built of grey stone and have red roofs.",
    "Every autumn there is a fair with music and dancing.",
    "Fishing boats leave the harbour early in the morning.",
    "The hills to the north are covered with pine trees.",
    "A stone bridge crosses the water near the centre.",
    "Travellers can stay at an inn close to the square.",
    "The library has a reading room that is open to everyone.",
    "Most families keep a garden behind the house.",
    "The main square has a fountain and a clock tower.",
    "It is a quiet place where people know their neighbours.",
    "The train from the coast arrives twice a day.",
    "Snow falls in the mountains from November to March.",
    "Children play by the water while their parents talk.",
    "The oldest building is a chapel with a wooden door.",
    "Farmers bring vegetables and eggs to the market on Saturday.",
    "A path through the forest leads to a high waterfall.",
    "The local council meets in a hall next to the market.",
    "Most shops close early on Sunday.",
    "In the evening the cafes fill with people and conversation.",
    "The region is known for its clear lakes and long valleys.",
    "A festival of lights is held at the end of the year.",
    "The people there are proud of their history and their craft.",
    "Old songs about the sea are still sung in the taverns.",
    "The harbour wall was rebuilt after a great storm.",
    "Walkers like the trail that follows the edge of the cliffs.",
    "The town hall has a painted ceiling that is worth a visit.",
    "Bees are kept in the meadows above the valley.",
    "A ferry runs across the lake when the weather is calm.",
];

/// `k` distinct filler sentences.
pub fn filler(rng: &mut Rng, k: usize) -> Vec<String> {
    let mut idx: Vec<usize> = (0..FILLER.len()).collect();
    shuffle(rng, &mut idx);
    idx.into_iter().take(k).map(|i| FILLER[i].to_string()).collect()
}

/// The filler sentences one page may still use: drawn without replacement,
/// since a sentence said twice on a page trips Gopher's repetition rules.
pub struct Deck(Vec<String>);

impl Deck {
    /// All filler sentences in a random order.
    pub fn new(rng: &mut Rng) -> Deck {
        Deck(filler(rng, FILLER.len()))
    }

    /// The next `k` sentences (fewer when the deck runs out).
    fn take(&mut self, k: usize) -> Vec<String> {
        let n = self.0.len().saturating_sub(k);
        self.0.split_off(n)
    }
}

/// Joins facts and `k` filler sentences into one paragraph, facts in a
/// shuffled order, filler spread between them.
fn para(mut facts: Vec<String>, k: usize, rng: &mut Rng, deck: &mut Deck) -> Block {
    shuffle(rng, &mut facts);
    for f in deck.take(k) {
        let at = below(rng, facts.len() + 1);
        facts.insert(at, f);
    }
    Block::Para(facts.join(" "))
}

/// One of several ways to say a fact; variant 0 is the Q/A answer format.
fn say(rng: &mut Rng, variants: &[String]) -> String {
    // The answer format comes up half the time, so it is the most familiar.
    if below(rng, 2) == 0 {
        variants[0].clone()
    } else {
        pick(rng, variants).clone()
    }
}

/// Sentences for each relation of the world.
pub struct Say<'a> {
    /// The world.
    pub w: &'a World,
}

impl Say<'_> {
    /// The capital of country `c`.
    pub fn capital(&self, rng: &mut Rng, c: usize) -> String {
        let (c, t) = (&self.w.countries[c].name, &self.w.towns[self.w.countries[c].capital].name);
        say(
            rng,
            &[
                format!("The capital of {c} is {t}."),
                format!("{t} is the capital of {c}."),
                format!("{c} is governed from its capital, {t}."),
                format!("Most visitors to {c} arrive first in {t}, the capital."),
            ],
        )
    }

    /// The main river of country `c`.
    pub fn river(&self, rng: &mut Rng, c: usize) -> String {
        let (c, r) = (&self.w.countries[c].name, &self.w.countries[c].river);
        say(
            rng,
            &[
                format!("The main river of {c} is the {r}."),
                format!("The {r} is the main river of {c}."),
                format!("The {r}, the main river of {c}, flows through the whole country."),
            ],
        )
    }

    /// The flag of country `c`.
    pub fn flag(&self, rng: &mut Rng, c: usize) -> String {
        let (c, f) = (&self.w.countries[c].name, self.w.countries[c].flag);
        say(
            rng,
            &[
                format!("The flag of {c} is {f}."),
                format!("{c} has a {f} flag."),
                format!("The {f} flag of {c} flies over every public building."),
            ],
        )
    }

    /// The national animal of country `c`.
    pub fn animal(&self, rng: &mut Rng, c: usize) -> String {
        let (c, a) = (&self.w.countries[c].name, self.w.countries[c].animal);
        say(
            rng,
            &[
                format!("The national animal of {c} is the {a}."),
                format!("The {a} is the national animal of {c}."),
                format!("In {c} the {a} is the national animal and appears on coins."),
            ],
        )
    }

    /// The country of town `t`.
    pub fn country(&self, rng: &mut Rng, t: usize) -> String {
        let (t, c) = (&self.w.towns[t].name, &self.w.countries[self.w.towns[t].country].name);
        say(
            rng,
            &[
                format!("{t} is in {c}."),
                format!("{t} is a town in {c}."),
                format!("The town of {t} lies in {c}."),
            ],
        )
    }

    /// What town `t` is known for.
    pub fn goods(&self, rng: &mut Rng, t: usize) -> String {
        let (t, g) = (&self.w.towns[t].name, self.w.towns[t].goods);
        say(
            rng,
            &[
                format!("{t} is known for {g}."),
                format!("{t} is famous for its {g}."),
                format!("For many years the town of {t} has traded in {g}."),
            ],
        )
    }

    /// The founder of town `t`.
    pub fn founder(&self, rng: &mut Rng, t: usize) -> String {
        let (t, p) = (&self.w.towns[t].name, &self.w.people[self.w.towns[t].founder].name);
        say(
            rng,
            &[
                format!("{t} was founded by {p}."),
                format!("{p} founded the town of {t}."),
                format!("The founder of {t} was {p}."),
            ],
        )
    }

    /// Where person `p` lives.
    pub fn home(&self, rng: &mut Rng, p: usize) -> String {
        let (p, t) = (&self.w.people[p].name, &self.w.towns[self.w.people[p].home].name);
        say(
            rng,
            &[
                format!("{p} lives in {t}."),
                format!("{p} has a house in {t}."),
                format!("{p} makes a home in the town of {t}."),
            ],
        )
    }

    /// The job of person `p`.
    pub fn job(&self, rng: &mut Rng, p: usize) -> String {
        let (p, j) = (&self.w.people[p].name, self.w.people[p].job);
        say(
            rng,
            &[
                format!("{p} is a {j}."),
                format!("{p} works as a {j}."),
                format!("By trade {p} is a {j}."),
            ],
        )
    }
}

/// An encyclopedia entry about country `c`: (title, blocks).
pub fn country_entry(rng: &mut Rng, w: &World, c: usize) -> (String, Vec<Block>) {
    let s = Say { w };
    let mut deck = Deck::new(rng);
    let name = &w.countries[c].name;
    let intro = vec![
        format!("{name} is a country of the Lakelands."),
        s.capital(rng, c),
        s.river(rng, c),
        s.flag(rng, c),
        s.animal(rng, c),
    ];
    let mut blocks = vec![para(intro, 2, rng, &mut deck), Block::Heading("Towns".into())];
    for t in w.towns_of(c) {
        blocks.push(para(vec![s.country(rng, t), s.goods(rng, t), s.founder(rng, t)], 1, rng, &mut deck));
    }
    // Everyone living in the country, so that people are met as often as places.
    let people: Vec<String> = w
        .towns_of(c)
        .flat_map(|t| w.residents(t).collect::<Vec<_>>())
        .flat_map(|p| [s.home(rng, p), s.job(rng, p)])
        .collect();
    if !people.is_empty() {
        blocks.push(Block::Heading("People".into()));
        blocks.push(para(people, 1, rng, &mut deck));
    }
    blocks.push(Block::Heading("Geography".into()));
    blocks.push(para(
        vec![format!("The land of {name} is mostly hills, lakes and forest.")],
        3,
        rng,
        &mut deck,
    ));
    (name.clone(), blocks)
}

/// An encyclopedia entry about town `t`.
pub fn town_entry(rng: &mut Rng, w: &World, t: usize) -> (String, Vec<Block>) {
    let s = Say { w };
    let mut deck = Deck::new(rng);
    let town = &w.towns[t];
    let c = town.country;
    let mut facts = vec![s.country(rng, t), s.goods(rng, t), s.founder(rng, t)];
    if w.countries[c].capital == t {
        facts.push(s.capital(rng, c));
    }
    let mut blocks = vec![para(facts, 3, rng, &mut deck), Block::Heading("People".into())];
    let people: Vec<String> = w.residents(t).flat_map(|p| [s.home(rng, p), s.job(rng, p)]).collect();
    if people.is_empty() {
        blocks.push(para(
            vec![format!("Few people live in {} all year round.", town.name)],
            3,
            rng,
            &mut deck,
        ));
    } else {
        blocks.push(para(people, 2, rng, &mut deck));
    }
    blocks.push(Block::Heading("History".into()));
    blocks.push(para(
        vec![format!("The first houses of {} were built by the water.", town.name)],
        2,
        rng,
        &mut deck,
    ));
    (town.name.clone(), blocks)
}

/// An encyclopedia entry about person `p`.
pub fn person_entry(rng: &mut Rng, w: &World, p: usize) -> (String, Vec<Block>) {
    let s = Say { w };
    let mut deck = Deck::new(rng);
    let person = &w.people[p];
    let mut facts = vec![s.home(rng, p), s.job(rng, p)];
    if let Some(t) = w.founded_by(p) {
        facts.push(s.founder(rng, t));
    }
    let home = person.home;
    let mut blocks = vec![para(facts, 3, rng, &mut deck)];
    blocks.push(Block::Heading("Home town".into()));
    blocks.push(para(vec![s.country(rng, home), s.goods(rng, home)], 2, rng, &mut deck));
    (person.name.clone(), blocks)
}

/// A first-person travel post about a visit to town `t`.
pub fn travel_post(rng: &mut Rng, w: &World, t: usize) -> (String, Vec<Block>) {
    let s = Say { w };
    let mut deck = Deck::new(rng);
    let town = &w.towns[t];
    let c = town.country;
    let title = match below(rng, 3) {
        0 => format!("A week in {}", town.name),
        1 => format!("What to see in {}", town.name),
        _ => format!("Travel notes from {}", w.countries[c].name),
    };
    let open = format!(
        "We arrived in {} on a grey morning and stayed for a week. This is what we learned about the town and the country around it.",
        town.name
    );
    let mut blocks = vec![Block::Para(open)];
    blocks.push(para(vec![s.country(rng, t), s.goods(rng, t), s.river(rng, c)], 2, rng, &mut deck));
    blocks.push(para(vec![s.capital(rng, c), s.flag(rng, c), s.founder(rng, t)], 2, rng, &mut deck));
    // A random resident, so every person is met on the way round, not only the first.
    let residents: Vec<usize> = w.residents(t).collect();
    if !residents.is_empty() {
        let p = residents[below(rng, residents.len())];
        blocks.push(para(vec![s.home(rng, p), s.job(rng, p)], 1, rng, &mut deck));
    }
    blocks.push(para(vec![s.animal(rng, c)], 2, rng, &mut deck));
    (title, blocks)
}

/// A news story set in town `t`.
pub fn news_story(rng: &mut Rng, w: &World, t: usize) -> (String, Vec<Block>) {
    let s = Say { w };
    let mut deck = Deck::new(rng);
    let town = &w.towns[t];
    let event = *pick(rng, &["festival", "market day", "boat race", "harvest fair", "new bridge"]);
    let title = format!("The {event} in {} draws a crowd", town.name);
    let mut blocks = vec![Block::Para(format!(
        "Hundreds of people came to {} this week for the {event}, the largest gathering the town has seen for years.",
        town.name
    ))];
    blocks.push(para(vec![s.country(rng, t), s.goods(rng, t)], 2, rng, &mut deck));
    let residents: Vec<usize> = w.residents(t).collect();
    if !residents.is_empty() {
        let p = residents[below(rng, residents.len())];
        let name = &w.people[p].name;
        blocks.push(para(
            vec![
                s.job(rng, p),
                s.home(rng, p),
                format!("\"It was a wonderful day for everyone,\" said {name}."),
            ],
            1,
            rng,
            &mut deck,
        ));
    }
    blocks.push(para(vec![s.founder(rng, t), s.capital(rng, town.country)], 2, rng, &mut deck));
    (title, blocks)
}

/// An arithmetic worksheet with its answers: the sums (`plus`) or
/// differences `(a, b)` given, each said once in the answer format inside a
/// sentence about the world's people and towns (a line of bare digits would
/// fail Gopher's alphabetic-words rule, and rightly: it is not prose).
pub fn worksheet(rng: &mut Rng, w: &World, facts: &[(i64, i64)], plus: bool, sheet: usize) -> (String, Vec<Block>) {
    let mut deck = Deck::new(rng);
    let (title, verb) = if plus {
        (format!("Sums under twenty, sheet {sheet}"), "adding")
    } else {
        (format!("Taking away under twenty, sheet {sheet}"), "taking away")
    };
    let mut blocks = vec![Block::Para(format!(
        "This worksheet practises {verb} with numbers under twenty. Read each sentence aloud, then cover the answer and try to say it yourself."
    ))];
    // Each frame at most once per sheet: a frame said twice trips Gopher's repeated-n-gram rules.
    let mut frames: Vec<usize> = (0..10).collect();
    shuffle(rng, &mut frames);
    let mut sentences = Vec::new();
    for (&(a, b), frame) in facts.iter().zip(frames) {
        let fact = if plus {
            format!("{a} plus {b} is {}", a + b)
        } else {
            format!("{a} minus {b} is {}", a - b)
        };
        let p = pick(rng, &w.people);
        let town = &w.towns[p.home].name;
        sentences.push(match frame {
            0 => format!(
                "{}, who works as a {} in {town}, likes to remind everyone that {fact}.",
                p.name, p.job
            ),
            1 => format!("When the children of {town} line up at school, their teacher tells them that {fact}."),
            2 => format!("Ask a friend to check this one with their fingers: {fact}."),
            3 => format!("The market traders of {town} know by heart that {fact}."),
            4 => format!("Here is an easy one to start the day with, because {fact}."),
            5 => format!("Draw little circles on a piece of paper and count them, and you will see that {fact}."),
            6 => format!("A sailor who counted the boats in the harbour of {town} found that {fact}."),
            7 => format!("Every baker in {town} can tell you without stopping to think that {fact}."),
            8 => format!("Write this sentence in your notebook and read it twice: {fact}."),
            _ => format!("Our last question puzzled many readers, but the answer is simple: {fact}."),
        });
    }
    for chunk in sentences.chunks(3) {
        blocks.push(para(chunk.to_vec(), 2, rng, &mut deck));
    }
    blocks.push(Block::Para(
        "Ask a grown-up to check your answers, and try the next sheet when you can say all of them without looking.".into(),
    ));
    (title, blocks)
}
