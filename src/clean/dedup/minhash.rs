//! MinHash signatures and LSH band keys.
//!
//! FineWeb's settings (FILTERS.md; datatrove `pipeline/dedup/minhash.py`,
//! `MinhashDedupSignature`): `bands × rows_per_band` = 14 × 8 = 112
//! permutations `h' = (a·h + b) mod (2^61 − 1)` of each 64-bit shingle hash,
//! the signature being the minimum of each permutation over the shingles.
//! Two documents are candidates when all `rows_per_band` values of any band
//! agree: P = 1 − (1 − s^8)^14, ≈ 0.92 at Jaccard 0.8, threshold
//! (1/14)^(1/8) ≈ 0.72.
//!
//! Unlike numpy in datatrove (whose `a·h` wraps at 2^64), the product is
//! taken exactly in 128 bits, so each `h'` is a true universal-hash
//! permutation of `h mod p`.

use super::simplify::combine;

/// The Mersenne prime 2^61 − 1.
pub const MERSENNE_61: u64 = (1 << 61) - 1;

/// `x mod (2^61 − 1)` for any `x < 2^125`, by folding the high bits
/// (2^61 ≡ 1).
#[inline]
fn mod_m61(x: u128) -> u64 {
    let p = MERSENNE_61 as u128;
    let s = (x & p) + (x >> 61);
    let s = ((s & p) + (s >> 61)) as u64;
    if s >= MERSENNE_61 { s - MERSENNE_61 } else { s }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the stream the permutation
/// coefficients are drawn from, fixed forever so signatures are stable.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The permutation family and band layout of one dedup run.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    bands: usize,
    rows: usize,
}

impl MinHasher {
    /// `bands × rows` permutations with coefficients from `seed`:
    /// `a ∈ [1, p)`, `b ∈ [0, p)`.
    pub fn new(bands: usize, rows: usize, seed: u64) -> Self {
        let n = bands * rows;
        let mut state = seed;
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            a.push(splitmix64(&mut state) % (MERSENNE_61 - 1) + 1);
            b.push(splitmix64(&mut state) % MERSENNE_61);
        }
        MinHasher { a, b, bands, rows }
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Permutations in a signature.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether there are no permutations (never, once checked).
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// The signature of a non-empty shingle set into `sig` (`len()` values).
    /// Loop order: one permutation over all shingles at a time, so `a`, `b`
    /// stay in registers and the shingles stream from cache.
    pub fn signature(&self, shingles: &[u64], sig: &mut [u64]) {
        for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
            let mut min = u64::MAX;
            for &h in shingles {
                let v = mod_m61(a as u128 * h as u128 + b as u128);
                min = min.min(v);
            }
            *s = min;
        }
    }

    /// One key per band: the stable hash of that band's `rows` values.
    /// `u64::MAX` is kept free as the "no signature" marker.
    pub fn band_keys(&self, sig: &[u64], keys: &mut [u64]) {
        for (k, rows) in keys.iter_mut().zip(sig.chunks_exact(self.rows)) {
            *k = combine(rows).min(u64::MAX - 1);
        }
    }
}

/// Band keys of a document with no words: never a candidate of anything.
pub const NO_SIGNATURE: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::dedup::simplify::shingles;

    #[test]
    fn mod_m61_matches_the_definition() {
        let p = MERSENNE_61 as u128;
        for x in [
            0u128,
            1,
            p - 1,
            p,
            p + 1,
            2 * p + 5,
            u64::MAX as u128,
            (p - 1) * (p - 1) + p - 1,
            1u128 << 124,
        ] {
            assert_eq!(mod_m61(x) as u128, x % p, "{x}");
        }
    }

    #[test]
    fn signatures_are_seeded_deterministic_and_order_free() {
        let mh = MinHasher::new(14, 8, 1);
        assert_eq!(mh.len(), 112);
        let sh: Vec<u64> = (0..50u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let mut s1 = vec![0; 112];
        let mut s2 = vec![0; 112];
        mh.signature(&sh, &mut s1);
        let mut rev = sh.clone();
        rev.reverse();
        MinHasher::new(14, 8, 1).signature(&rev, &mut s2);
        assert_eq!(s1, s2);
        assert!(s1.iter().all(|&v| v < MERSENNE_61));
        MinHasher::new(14, 8, 2).signature(&sh, &mut s2);
        assert_ne!(s1, s2);
    }

    #[test]
    fn signatures_are_stable_across_versions() {
        // Pinned: covers the word hash, the shingle combine and the
        // coefficient stream. If it changes, cached dedup decisions change.
        let (mut w, mut sh) = (vec![], vec![]);
        shingles("the quick brown fox jumps over the lazy dog", 5, &mut w, &mut sh);
        let mh = MinHasher::new(14, 8, 1);
        let mut sig = vec![0; 112];
        mh.signature(&sh, &mut sig);
        let mut keys = vec![0; 14];
        mh.band_keys(&sig, &mut keys);
        assert_eq!(
            (sig[0], sig[111], keys[0]),
            (4262711815918194, 594851357284340639, 5575852047112111718)
        );
    }

    #[test]
    fn matching_signature_fraction_estimates_jaccard() {
        // Two sets sharing 600 of 1000 shingles: Jaccard 600/1400 ≈ 0.43.
        let mh = MinHasher::new(32, 8, 7);
        let a: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let b: Vec<u64> = (400..1400u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let (mut sa, mut sb) = (vec![0; 256], vec![0; 256]);
        mh.signature(&a, &mut sa);
        mh.signature(&b, &mut sb);
        let same = sa.iter().zip(&sb).filter(|(x, y)| x == y).count() as f64 / 256.0;
        assert!((same - 600.0 / 1400.0).abs() < 0.1, "{same}");
    }

    #[test]
    fn near_duplicates_share_a_band_and_unrelated_texts_do_not() {
        let mh = MinHasher::new(14, 8, 1);
        let keys = |text: &str| {
            let (mut w, mut sh) = (vec![], vec![]);
            shingles(text, 5, &mut w, &mut sh);
            let mut sig = vec![0; 112];
            mh.signature(&sh, &mut sig);
            let mut k = vec![0; 14];
            mh.band_keys(&sig, &mut k);
            k
        };
        let base: Vec<String> = (0..300).map(|i| format!("w{}", (i * 7919) % 1009)).collect();
        let mut edited = base.clone();
        edited[150] = "changed".into();
        let other: Vec<String> = (0..300).map(|i| format!("v{}", (i * 31) % 1013)).collect();
        let (kb, ke, ko) = (keys(&base.join(" ")), keys(&edited.join(" ")), keys(&other.join(" ")));
        assert!(kb.iter().zip(&ke).any(|(x, y)| x == y));
        assert!(kb.iter().zip(&ko).all(|(x, y)| x != y));
    }
}
