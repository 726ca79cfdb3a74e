//! Cross-document line deduplication (CCNet, Wenzek et al. 2019, §3.3:
//! lines are normalised — lowercase, digits → 0, punctuation and accents
//! removed — hashed, and a line that occurs in other documents is removed
//! as boilerplate). Here a line is removed when more than `max_occurrences`
//! distinct documents contain it; CCNet's rule is `max_occurrences: 1`.

use super::simplify::{Simplify, hash_bytes};

/// Distinct hashes of the non-empty normalised lines of `text`, sorted, in
/// `out` (a line repeated inside one document counts once for it).
pub fn line_hashes(text: &str, simplify: &Simplify, scratch: &mut String, out: &mut Vec<u64>) {
    out.clear();
    for line in text.split('\n') {
        simplify.apply(line, scratch);
        if !scratch.is_empty() {
            out.push(hash_bytes(scratch.as_bytes()));
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// The hashes of lines seen in too many documents, sorted.
#[derive(Debug, Default, Clone)]
pub struct FrequentLines {
    hashes: Vec<u64>,
}

impl FrequentLines {
    /// From hashes in increasing order (as a sorted merge yields them).
    pub fn from_sorted(hashes: Vec<u64>) -> Self {
        debug_assert!(hashes.windows(2).all(|w| w[0] < w[1]));
        FrequentLines { hashes }
    }

    /// The hashes, in increasing order.
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Number of distinct frequent lines.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no line is frequent.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether the line with this hash is removed.
    pub fn contains(&self, h: u64) -> bool {
        self.hashes.binary_search(&h).is_ok()
    }

    /// `text` without its frequent lines, into `out`; returns how many lines
    /// were removed. Lines that normalise to nothing (blank, punctuation
    /// only) are kept: they carry layout, not boilerplate.
    pub fn remove(&self, text: &str, simplify: &Simplify, scratch: &mut String, out: &mut String) -> usize {
        out.clear();
        let mut removed = 0;
        let mut first = true;
        for line in text.split('\n') {
            simplify.apply(line, scratch);
            if !scratch.is_empty() && self.contains(hash_bytes(scratch.as_bytes())) {
                removed += 1;
                continue;
            }
            if !first {
                out.push('\n');
            }
            first = false;
            out.push_str(line);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_per_normalised_line_and_distinct() {
        let s = Simplify::default();
        let (mut scratch, mut a, mut b) = (String::new(), vec![], vec![]);
        line_hashes("Home | About\n\nReal text 12.\nHOME  about\n", &s, &mut scratch, &mut a);
        assert_eq!(a.len(), 2, "the two menu lines normalise alike; blank lines are skipped");
        line_hashes("real TEXT 99", &s, &mut scratch, &mut b);
        assert!(a.contains(&b[0]));
    }

    #[test]
    fn remove_drops_only_frequent_lines_and_keeps_layout() {
        let s = Simplify::default();
        let (mut scratch, mut h) = (String::new(), vec![]);
        line_hashes("Accept cookies", &s, &mut scratch, &mut h);
        let f = FrequentLines::from_sorted(h);
        let mut out = String::new();
        let n = f.remove("Title\nACCEPT COOKIES!\n\nBody line.\naccept cookies", &s, &mut scratch, &mut out);
        assert_eq!(n, 2);
        assert_eq!(out, "Title\n\nBody line.");
        assert_eq!(f.remove("nothing here", &s, &mut scratch, &mut out), 0);
        assert_eq!(out, "nothing here");
    }
}
