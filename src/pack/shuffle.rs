//! Seeded permutations and the train/validation split.
//!
//! kiln carries its own tiny generator (SplitMix64) instead of `rand`: a
//! pipeline's packed rows and a trainer's epoch order must stay the same for
//! a seed across kiln releases, and `rand` documents that its algorithms may
//! change between versions. Everything here is serial, so results never
//! depend on the thread count.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, passes BigCrush,
/// and is the seeding generator the xoshiro authors recommend.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator for `seed` in the named `stream`, so that the split, the
    /// document shuffle and each epoch draw independent sequences from one
    /// pipeline seed.
    pub fn new(seed: u64, stream: &str, index: u64) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(stream.as_bytes());
        h.update(&index.to_le_bytes());
        let b = h.finalize();
        let mut s = [0u8; 8];
        s.copy_from_slice(&b.as_bytes()[..8]);
        SplitMix64 {
            state: u64::from_le_bytes(s),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (Lemire 2019,
    /// "Fast random integer generation in an interval").
    pub fn below(&mut self, n: u64) -> u64 {
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }
}

/// Shuffles `v` in place (Fisher–Yates) with `rng`.
pub fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// A seeded permutation of `0..n`.
pub fn permutation(n: u64, seed: u64, stream: &str, index: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    shuffle(&mut v, &mut SplitMix64::new(seed, stream, index));
    v
}

/// How many documents go to validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValSplit {
    /// None.
    None,
    /// This fraction of documents, rounded, at least one when positive.
    Fraction(f64),
    /// Exactly this many documents.
    Docs(u64),
}

impl ValSplit {
    /// Validation documents out of `n`, or an error when training would be
    /// left with nothing.
    pub fn count(self, n: u64) -> Result<u64, String> {
        let k = match self {
            ValSplit::None => 0,
            ValSplit::Fraction(f) if f <= 0.0 => 0,
            ValSplit::Fraction(f) => ((n as f64 * f).round() as u64).max(1),
            ValSplit::Docs(k) => k,
        };
        if k > 0 && k >= n {
            return Err(format!(
                "{k} validation document(s) would leave none of the {n} for training; lower `val_docs`/`val_fraction`"
            ));
        }
        Ok(k)
    }
}

/// Document order of each split: `(train, val)`, as indices into the input.
///
/// One seeded permutation decides both: its first `k` documents are the
/// validation set and the rest train, so membership is fixed before any
/// packing (no document crosses splits) and does not depend on `shuffle`.
/// With `shuffle` the permutation's order is kept; without it each split is
/// in input order.
pub fn split_docs(n: u64, val: ValSplit, seed: u64, shuffle_docs: bool) -> Result<(Vec<u32>, Vec<u32>), String> {
    if n > u32::MAX as u64 {
        return Err(format!("{n} documents is more than pack supports ({})", u32::MAX));
    }
    let k = val.count(n)? as usize;
    if !shuffle_docs && k == 0 {
        // The common unshuffled case needs no permutation at all.
        return Ok(((0..n as u32).collect(), Vec::new()));
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut order, &mut SplitMix64::new(seed, "kiln.pack.docs", 0));
    let mut train = order.split_off(k);
    let mut val = order;
    if !shuffle_docs {
        train.sort_unstable();
        val.sort_unstable();
    }
    Ok((train, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = permutation(1000, 1, "x", 0);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, permutation(1000, 1, "x", 0));
        assert_ne!(a, permutation(1000, 2, "x", 0));
        assert_ne!(a, permutation(1000, 1, "y", 0));
        assert_ne!(a, permutation(1000, 1, "x", 1));
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut r = SplitMix64::new(0, "t", 0);
        let mut c = [0u32; 6];
        for _ in 0..60_000 {
            c[r.below(6) as usize] += 1;
        }
        assert!(c.iter().all(|&x| (9_000..11_000).contains(&x)), "{c:?}");
    }

    #[test]
    fn split_is_deterministic_disjoint_and_exact() {
        for shuffle_docs in [true, false] {
            let (t, v) = split_docs(1000, ValSplit::Fraction(0.1), 7, shuffle_docs).unwrap();
            assert_eq!((t.len(), v.len()), (900, 100));
            let mut all: Vec<u32> = t.iter().chain(&v).copied().collect();
            all.sort();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
            assert_eq!(
                (t.clone(), v.clone()),
                split_docs(1000, ValSplit::Fraction(0.1), 7, shuffle_docs).unwrap()
            );
            if !shuffle_docs {
                assert!(t.windows(2).all(|w| w[0] < w[1]));
            }
        }
        // The validation set is the same whether or not documents are shuffled.
        let (_, v1) = split_docs(500, ValSplit::Docs(20), 3, true).unwrap();
        let (_, v2) = split_docs(500, ValSplit::Docs(20), 3, false).unwrap();
        let mut v1s = v1.clone();
        v1s.sort();
        assert_eq!(v1s, v2);
        assert_ne!(split_docs(500, ValSplit::Docs(20), 4, false).unwrap().1, v2);
        assert_eq!(split_docs(10, ValSplit::Fraction(0.01), 0, true).unwrap().1.len(), 1);
        assert!(split_docs(10, ValSplit::Docs(10), 0, true).is_err());
    }
}
