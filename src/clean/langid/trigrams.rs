//! A shortlist of candidate languages for lingua, from lingua's own models.
//!
//! For a text of 120 letters or more, lingua's high-accuracy mode scores
//! each language by trigrams alone (lingua 1.8 `detector.rs`,
//! `compute_language_confidence_values_for_languages`): every distinct
//! trigram of every word adds the language's log-probability of that
//! trigram, or of its first two characters, or of its first character,
//! whichever the model has first. It looks each one up in a separate FST per
//! language, so 2,000 characters cost ~37 × 1,500 FST walks, most of
//! `clean`'s time on a crawl.
//!
//! This module reads the same probabilities from the same model files once
//! into one hash table keyed by the packed n-gram, so a trigram is one lookup
//! for all languages, and sums them the same way (in f32, which moves a sum
//! of a few thousand terms by well under a nat). Before the sums it applies
//! the rules lingua applies first: texts its first rule could decide go to
//! lingua; the script with most letters and the shared-letter subset narrow
//! the candidates. Then, when every sum is so low that lingua's softmax
//! underflows, the leader is lingua's answer with confidence 1.0; otherwise
//! the languages within [`MARGIN`] nats of the best go to a lingua detector
//! built for just those, which computes the confidence values. A language
//! further behind cannot be lingua's answer, and its share of lingua's
//! softmax is below e^-MARGIN, so the result is lingua's own
//! (tests/langid_shortlist.rs compares the two on real text).

use lingua::Language;
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Nats behind the best language beyond which a language is left out.
/// e^-30 ≈ 1e-13: below what a confidence value printed to 2 decimals shows.
pub(super) const MARGIN: f64 = 30.0;
/// lingua uses trigrams alone from this many letters on.
pub(super) const MIN_LETTERS: usize = 120;
/// Below this summed log-probability lingua's softmax underflows for every
/// language (e^-745 is the smallest f64), and lingua then gives its best
/// language confidence 1.0 (`compute_confidence_values`).
const UNDERFLOW: f64 = -760.0;
/// A lead this large (in nats) cannot come from summing in f32 rather than f64.
const SURE_LEAD: f64 = 1.0;

/// What the shortlist found for a text.
#[derive(Debug, PartialEq)]
pub(super) enum Shortlist {
    /// lingua's answer, with confidence 1.0: every sum underflows and this
    /// language leads by [`SURE_LEAD`] or more.
    Decided(Language),
    /// The languages lingua could pick, best first, at least two.
    Ask(Vec<Language>),
}

/// lingua's word pattern (`constant.rs`, `TOKENS_WITHOUT_WHITESPACE`): runs of
/// letters, with Han, Hiragana and Katakana characters as words of their own.
static WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\p{Bengali}+|\p{Devanagari}+|\p{Gujarati}+|\p{Gurmukhi}+|\p{Han}|\p{Hangul}+|\p{Hiragana}|\p{Katakana}|\p{Tamil}+|\p{Telugu}+|\p{Thai}+|\p{L}+",
    )
    .expect("constant pattern") // ok: a constant, valid pattern
});

/// The two scripts the shortlist serves, as lingua's alphabet rule sees a
/// word (every character in the script). Texts in other scripts are rarer
/// and lingua's rules settle most of them outright, so they go to lingua.
static SCRIPTS: LazyLock<[(Regex, HashSet<Language>); 2]> = LazyLock::new(|| {
    let re = |s| Regex::new(s).expect("constant pattern"); // ok: constant, valid patterns
    [
        (re(r"\A\p{Latin}+\z"), Language::all_with_latin_script()),
        (re(r"\A\p{Cyrillic}+\z"), Language::all_with_cyrillic_script()),
    ]
});

/// lingua's letters shared by a few languages (`constant.rs`,
/// `CHARS_TO_LANGUAGES_MAPPING`), lower case, for the languages kiln compiles.
const SHARED: [(&str, &[&str]); 41] = [
    ("ã", &["pt", "vi"]),
    ("ąę", &["lt", "pl"]),
    ("ż", &["pl", "ro"]),
    ("î", &["fr", "ro"]),
    ("ñ", &["es"]),
    ("ňť", &["cs", "sk"]),
    ("ă", &["ro", "vi"]),
    ("ığ", &["tr"]),
    ("ẹọ", &["vi"]),
    ("ðþ", &["tr"]),
    ("û", &["fr", "hu"]),
    ("āēī", &["lv"]),
    ("ş", &["ro", "tr"]),
    ("ď", &["cs", "ro", "sk"]),
    ("ć", &["hr", "pl"]),
    ("đ", &["hr", "vi"]),
    ("і", &["uk"]),
    ("ì", &["it", "vi"]),
    ("ø", &["nb", "da"]),
    ("ū", &["lv", "lt"]),
    ("ë", &["nl", "fr"]),
    ("èù", &["fr", "it", "vi"]),
    ("ê", &["fr", "pt", "vi"]),
    ("õ", &["et", "hu", "pt", "vi"]),
    ("ô", &["fr", "pt", "sk", "vi"]),
    ("ёыэ", &["ru"]),
    ("щъ", &["bg", "ru"]),
    ("ò", &["ca", "it", "vi"]),
    ("â", &["fr", "pt", "ro", "tr", "vi"]),
    ("æ", &["nb", "da"]),
    ("å", &["nb", "da", "sv"]),
    ("ý", &["cs", "sk", "tr", "vi"]),
    ("ä", &["et", "fi", "de", "sk", "sv"]),
    ("à", &["ca", "fr", "it", "pt", "vi"]),
    ("ü", &["ca", "et", "de", "hu", "es", "tr"]),
    ("čšž", &["cs", "hr", "lv", "lt", "sk", "sl"]),
    ("ç", &["ca", "fr", "pt", "tr"]),
    ("ö", &["et", "fi", "de", "hu", "sv", "tr"]),
    ("ó", &["ca", "hu", "pl", "pt", "sk", "es", "vi"]),
    ("áíú", &["ca", "cs", "hu", "pt", "sk", "es", "vi"]),
    ("é", &["ca", "cs", "fr", "hu", "it", "pt", "sk", "es", "vi"]),
];

/// The letters lingua takes as proof of one language (`language.rs`,
/// `unique_characters`), for the languages kiln compiles.
const UNIQUE: &str = "ÏïĚěŘřŮůßŐőŰűĢģĶķĻļŅņĖėĮįŲųŁłŃńŚśŹźȚţĹĺĽľŔŕҐґЄєЇїẰằẦầẲẳẨẩẴẵẪẫẮắẤấẠạẶặẬậỀềẺẻỂểẼẽỄễẾếỆệỈỉĨĩỊịƠơỒồỜờỎỏỔổỞởỖỗỠỡỐốỚớỘộỢợƯưỪừỦủỬửŨũỮữỨứỤụỰựỲỳỶỷỸỹỴỵ";

/// Up to three characters in one `u64`, 21 bits each, first character
/// highest; absent characters are 0, which no n-gram contains.
fn pack(chars: &[char]) -> u64 {
    chars.iter().fold(0u64, |k, &c| (k << 21) | c as u64) << (21 * (3 - chars.len()))
}

/// The bits of a packed key's first `n` characters.
const PREFIX: [u64; 3] = [0x1F_FFFF << 42, 0x03FF_FFFF_FFFF << 21, u64::MAX];

/// The uni-, bi- and trigram log-probabilities of a set of languages.
pub(super) struct Trigrams {
    /// The languages, in the order of their indices below.
    pub langs: Vec<Language>,
    /// Packed n-gram → its run in `lang` / `logp`.
    index: HashMap<u64, (u32, u32), ahash::RandomState>,
    lang: Vec<u8>,
    logp: Vec<f32>,
    /// The languages written in each of [`SCRIPTS`], as index bits.
    script_mask: [u64; 2],
    /// Each letter of [`SHARED`] → the bits of the languages that use it.
    shared: HashMap<char, u64>,
}

/// One n-gram of one language: packed key, language index, log-probability.
type Row = (u64, u8, f32);

/// An `fst` automaton that accepts keys of one to three characters, so the
/// stream never descends into the 4- and 5-grams that make up most of a model.
struct UpToThreeChars;

impl fst::Automaton for UpToThreeChars {
    type State = Option<u8>;
    fn start(&self) -> Option<u8> {
        Some(0)
    }
    fn is_match(&self, s: &Option<u8>) -> bool {
        s.is_some_and(|n| n > 0)
    }
    fn can_match(&self, s: &Option<u8>) -> bool {
        s.is_some()
    }
    fn accept(&self, s: &Option<u8>, byte: u8) -> Option<u8> {
        // A byte that is not a UTF-8 continuation byte starts a character.
        let n = s.as_ref()? + u8::from(byte & 0xC0 != 0x80);
        (n <= 3).then_some(n)
    }
}

impl Trigrams {
    /// Reads the models of `langs` (at most 64); about 0.2 s of CPU for all
    /// 37, spread over one scoped thread per core. Not rayon: this runs
    /// inside a `OnceLock` initialiser, and a rayon worker waiting on its
    /// own tasks could steal one that asks for the same lock and deadlock.
    pub(super) fn load(langs: &[Language]) -> Result<Self, String> {
        use fst::{IntoStreamer, Streamer};
        // ok: callers pass the compiled languages, 37; the index bits are a u64.
        assert!(langs.len() <= 64, "at most 64 languages");
        let read = |i: usize, l: Language| -> Result<Vec<Row>, String> {
            let bytes = models::ngrams(l).ok_or_else(|| format!("no n-gram model compiled in for {l}"))?;
            let map = fst::Map::new(bytes).map_err(|e| format!("{l}'s n-gram model: {e}"))?;
            let mut stream = map.search(UpToThreeChars).into_stream();
            let mut chars = Vec::with_capacity(3);
            let mut rows = Vec::new();
            while let Some((key, value)) = stream.next() {
                let Ok(s) = std::str::from_utf8(key) else { continue };
                chars.clear();
                chars.extend(s.chars());
                // lingua stores each log-probability as the bits of an f64.
                rows.push((pack(&chars), i as u8, f64::from_bits(value) as f32));
            }
            drop(stream);
            release(bytes);
            Ok(rows)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(langs.len().max(1));
        let per_lang: Vec<Result<Vec<Row>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let read = &read;
                    s.spawn(move || (t..langs.len()).step_by(threads).map(|i| read(i, langs[i])).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut rows: Vec<Row> = Vec::new();
        for r in per_lang {
            rows.extend(r?);
        }
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut index = HashMap::with_capacity_and_hasher(rows.len() / 4, ahash::RandomState::with_seeds(1, 2, 3, 4));
        let mut start = 0;
        while start < rows.len() {
            let key = rows[start].0;
            let end = start + rows[start..].iter().take_while(|r| r.0 == key).count();
            index.insert(key, (start as u32, end as u32));
            start = end;
        }
        let bits = |pred: &dyn Fn(Language) -> bool| {
            langs
                .iter()
                .enumerate()
                .filter(|(_, l)| pred(**l))
                .fold(0u64, |m, (i, _)| m | 1 << i)
        };
        let mut shared = HashMap::new();
        for (letters, codes) in SHARED {
            let m = bits(&|l| codes.contains(&l.iso_code_639_1().to_string().as_str()));
            for c in letters.chars() {
                shared.insert(c, m);
            }
        }
        Ok(Trigrams {
            langs: langs.to_vec(),
            index,
            lang: rows.iter().map(|r| r.1).collect(),
            logp: rows.iter().map(|r| r.2).collect(),
            script_mask: [0, 1].map(|i| bits(&|l| SCRIPTS[i].1.contains(&l))),
            shared,
        })
    }

    /// lingua's answer for `text` among the languages whose bit is set in
    /// `allowed`, or the few languages it could pick; `None` when lingua would not
    /// use trigrams alone (fewer than [`MIN_LETTERS`] letters), when its rules
    /// might name a language outright, or when no language has evidence: the
    /// caller then asks lingua with every language.
    pub(super) fn shortlist(&self, text: &str, allowed: u64) -> Option<Shortlist> {
        let lower = text.trim().to_lowercase();
        let n = self.langs.len();
        let (mut letters, mut words, mut decidable) = (0usize, 0usize, 0usize);
        // A script only one allowed language is written in decides by itself
        // in lingua's first rule (with `languages: [en, ru]`, Cyrillic is Russian).
        let single = self.script_mask.map(|m| (allowed & m).count_ones() == 1);
        let mut in_script = [0usize; 2];
        let mut shared = vec![0u32; n];
        let (mut keys, mut chars, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        for w in WORDS.find_iter(&lower) {
            let w = w.as_str();
            chars.clear();
            chars.extend(w.chars());
            letters += chars.len();
            words += 1;
            // ASCII letters are all Latin, and no rule of lingua's looks at them.
            let script = if w.is_ascii() {
                Some(0)
            } else {
                SCRIPTS.iter().position(|(re, _)| re.is_match(w))
            };
            if let Some(i) = script {
                in_script[i] += chars.len();
            }
            let proof = !w.is_ascii() && (script.is_none() || chars.iter().any(|&c| UNIQUE.contains(c)));
            if proof || script.is_some_and(|i| single[i]) {
                decidable += 1;
            }
            if !w.is_ascii() {
                seen.clear();
                for &c in &chars {
                    if let Some(&m) = self.shared.get(&c).filter(|_| !seen.contains(&c)) {
                        seen.push(c);
                        for (l, count) in shared.iter_mut().enumerate() {
                            *count += (m >> l & 1) as u32;
                        }
                    }
                }
            }
            keys.extend(chars.windows(3).map(pack));
        }
        if letters < MIN_LETTERS {
            return None;
        }
        // lingua's first rule (`detect_language_with_rules`) names a language
        // when over half the words carry a letter only it uses or a script only
        // it is written in; in reach of that, ask lingua itself.
        if decidable * 2 >= words {
            return None;
        }
        // Its second rule keeps the languages of the script with the most
        // letters. Comparing sums across scripts would rank first a language
        // that knows few of the trigrams (and so adds few log-probabilities),
        // so a text is served only when one script holds most of its letters.
        let script = (0..2).find(|&i| in_script[i] * 2 > letters)?;
        let of_script = allowed & self.script_mask[script];
        // Then, if letters shared by a few languages (ã, ä, ł...)
        // are in at least half the words, only those languages remain.
        let half = words as f64 * 0.5;
        let subset = (0..n)
            .filter(|&l| of_script >> l & 1 == 1 && f64::from(shared[l]) >= half)
            .fold(0u64, |m, l| m | 1 << l);
        let candidates = if subset != 0 { subset } else { of_script };
        // lingua scores each distinct trigram once.
        keys.sort_unstable();
        keys.dedup();
        let mut sums = vec![0f64; n];
        let mut val = [0f32; 64];
        for &key in &keys {
            // Lowest order first, so the highest order a language has wins.
            let mut have = 0u64;
            for prefix in PREFIX {
                if let Some(&(a, b)) = self.index.get(&(key & prefix)) {
                    for j in a as usize..b as usize {
                        let l = self.lang[j] as usize;
                        val[l] = self.logp[j];
                        have |= 1 << l;
                    }
                }
            }
            have &= candidates;
            while have != 0 {
                let l = have.trailing_zeros() as usize;
                sums[l] += f64::from(val[l]);
                have &= have - 1;
            }
        }
        let mut ranked: Vec<usize> = (0..n).filter(|&l| candidates >> l & 1 == 1 && sums[l] < 0.0).collect();
        ranked.sort_by(|&a, &b| sums[b].total_cmp(&sums[a]));
        let best = sums[*ranked.first()?];
        if best < UNDERFLOW && ranked.get(1).is_none_or(|&l| best - sums[l] >= SURE_LEAD) {
            return Some(Shortlist::Decided(self.langs[ranked[0]]));
        }
        let mut keep: Vec<usize> = ranked.iter().copied().take_while(|&l| sums[l] >= best - MARGIN).collect();
        if keep.len() < 2 {
            // A detector of one language takes another path in lingua, and one
            // with a single language of the script would let its first rule
            // decide by the script alone; a second language of the script (the
            // runner-up, or one without evidence, which lingua leaves out of the
            // softmax) keeps it on the path it takes with every language.
            let first = keep[0];
            let other = ranked
                .get(1)
                .copied()
                .or_else(|| (0..n).find(|&l| l != first && of_script >> l & 1 == 1));
            keep.extend(other);
        }
        Some(Shortlist::Ask(keep.into_iter().map(|l| self.langs[l]).collect()))
    }

    /// Index bits of `langs` in this table.
    pub(super) fn mask(&self, langs: &[Language]) -> u64 {
        self.langs
            .iter()
            .enumerate()
            .filter(|(_, l)| langs.contains(l))
            .fold(0, |m, (i, _)| m | 1 << i)
    }
}

/// Gives back the pages of a model that the walk above read in (`bytes`
/// must be a static of the binary, never heap memory, which this would zero): the FSTs
/// are 177 MB of the binary's read-only data, and the walk touches nearly
/// all of it, which would stay in the process's resident set (as clean,
/// file-backed pages) for no use. lingua reads the few pages a text needs
/// again on demand. Only whole pages inside `bytes` are released.
fn release(bytes: &[u8]) {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let start = (bytes.as_ptr() as usize).div_ceil(page) * page;
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end > start {
            // SAFETY: the range is whole pages inside a read-only, file-backed
            // static that nothing writes: MADV_DONTNEED only drops them, and the
            // next read faults the same bytes back in from the file.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// The `ngrams.fst` bytes of each compiled language's model crate.
mod models {
    use lingua::Language;

    macro_rules! models {
        ($($lang:ident => $krate:ident::$dir:ident),* $(,)?) => {
            pub(super) fn ngrams(l: Language) -> Option<&'static [u8]> {
                match l {
                    $(Language::$lang => $krate::$dir.get_file("ngrams.fst").map(|f| f.contents()),)*
                }
            }
        };
    }

    models! {
        Arabic => lingua_arabic_language_model::ARABIC_MODELS_DIRECTORY,
        Bokmal => lingua_bokmal_language_model::BOKMAL_MODELS_DIRECTORY,
        Bulgarian => lingua_bulgarian_language_model::BULGARIAN_MODELS_DIRECTORY,
        Catalan => lingua_catalan_language_model::CATALAN_MODELS_DIRECTORY,
        Chinese => lingua_chinese_language_model::CHINESE_MODELS_DIRECTORY,
        Croatian => lingua_croatian_language_model::CROATIAN_MODELS_DIRECTORY,
        Czech => lingua_czech_language_model::CZECH_MODELS_DIRECTORY,
        Danish => lingua_danish_language_model::DANISH_MODELS_DIRECTORY,
        Dutch => lingua_dutch_language_model::DUTCH_MODELS_DIRECTORY,
        English => lingua_english_language_model::ENGLISH_MODELS_DIRECTORY,
        Estonian => lingua_estonian_language_model::ESTONIAN_MODELS_DIRECTORY,
        Finnish => lingua_finnish_language_model::FINNISH_MODELS_DIRECTORY,
        French => lingua_french_language_model::FRENCH_MODELS_DIRECTORY,
        German => lingua_german_language_model::GERMAN_MODELS_DIRECTORY,
        Greek => lingua_greek_language_model::GREEK_MODELS_DIRECTORY,
        Hebrew => lingua_hebrew_language_model::HEBREW_MODELS_DIRECTORY,
        Hindi => lingua_hindi_language_model::HINDI_MODELS_DIRECTORY,
        Hungarian => lingua_hungarian_language_model::HUNGARIAN_MODELS_DIRECTORY,
        Indonesian => lingua_indonesian_language_model::INDONESIAN_MODELS_DIRECTORY,
        Italian => lingua_italian_language_model::ITALIAN_MODELS_DIRECTORY,
        Japanese => lingua_japanese_language_model::JAPANESE_MODELS_DIRECTORY,
        Korean => lingua_korean_language_model::KOREAN_MODELS_DIRECTORY,
        Latvian => lingua_latvian_language_model::LATVIAN_MODELS_DIRECTORY,
        Lithuanian => lingua_lithuanian_language_model::LITHUANIAN_MODELS_DIRECTORY,
        Persian => lingua_persian_language_model::PERSIAN_MODELS_DIRECTORY,
        Polish => lingua_polish_language_model::POLISH_MODELS_DIRECTORY,
        Portuguese => lingua_portuguese_language_model::PORTUGUESE_MODELS_DIRECTORY,
        Romanian => lingua_romanian_language_model::ROMANIAN_MODELS_DIRECTORY,
        Russian => lingua_russian_language_model::RUSSIAN_MODELS_DIRECTORY,
        Slovak => lingua_slovak_language_model::SLOVAK_MODELS_DIRECTORY,
        Slovene => lingua_slovene_language_model::SLOVENE_MODELS_DIRECTORY,
        Spanish => lingua_spanish_language_model::SPANISH_MODELS_DIRECTORY,
        Swedish => lingua_swedish_language_model::SWEDISH_MODELS_DIRECTORY,
        Thai => lingua_thai_language_model::THAI_MODELS_DIRECTORY,
        Turkish => lingua_turkish_language_model::TURKISH_MODELS_DIRECTORY,
        Ukrainian => lingua_ukrainian_language_model::UKRAINIAN_MODELS_DIRECTORY,
        Vietnamese => lingua_vietnamese_language_model::VIETNAMESE_MODELS_DIRECTORY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pack_prefixes() {
        let k = pack(&['a', 'b', 'c']);
        assert_eq!(k & PREFIX[0], pack(&['a']));
        assert_eq!(k & PREFIX[1], pack(&['a', 'b']));
        assert_eq!(k & PREFIX[2], k);
        assert_ne!(pack(&['a', 'b']), pack(&['b']));
        assert_eq!(pack(&['\u{10FFFF}', 'z', '\u{10FFFF}']) >> 42, 0x10FFFF);
    }
}
