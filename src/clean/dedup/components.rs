//! Connected components of candidate pairs, by union-find over document
//! indices, with the keep rule built in: a component's root is always its
//! smallest index, i.e. the earliest document in input order, whatever
//! order the pairs arrive in (so the result is the same for any thread or
//! shard count).
//!
//! Memory: one `u32` parent per document (4 bytes/doc: 800 MB at 2×10^8
//! documents, the bound of this in-memory design; `u32` itself caps a run
//! at 2^32 − 1 documents).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Disjoint sets over `0..n` whose roots are their minimum elements.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: u32) -> Self {
        UnionFind { parent: (0..n).collect() }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root (smallest member) of `x`'s set, halving the path on the way.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let gp = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
        x
    }

    /// Joins the sets of `a` and `b`; the smaller root wins. Returns whether
    /// they were apart.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi as usize] = lo;
        true
    }

    /// Points every element straight at its root and returns the roots
    /// (`roots[i] == i`: `i` is kept).
    pub fn into_roots(mut self) -> Vec<u32> {
        // Increasing order: a parent is always smaller than its child, so
        // its own root is final by the time the child is visited.
        for i in 0..self.parent.len() {
            let p = self.parent[i] as usize;
            self.parent[i] = self.parent[p];
        }
        self.parent
    }
}

/// A file of candidate pairs `(u32, u32)`, little-endian: the on-disk hand-off
/// from the bucket stage (one file per band) to the clustering stage.
pub struct PairWriter {
    w: BufWriter<File>,
    path: std::path::PathBuf,
    /// Pairs written.
    pub pairs: u64,
}

impl PairWriter {
    /// Creates `path`.
    pub fn create(path: &Path) -> Result<Self, String> {
        let f = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(PairWriter {
            w: BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
            pairs: 0,
        })
    }

    /// Appends one pair.
    pub fn push(&mut self, a: u32, b: u32) -> Result<(), String> {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&a.to_le_bytes());
        rec[4..].copy_from_slice(&b.to_le_bytes());
        self.pairs += 1;
        self.w
            .write_all(&rec)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    /// Flushes; returns the number of pairs.
    pub fn finish(mut self) -> Result<u64, String> {
        self.w.flush().map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        Ok(self.pairs)
    }
}

/// Unions every pair of the file at `path` into `uf`.
pub fn union_pairs_file(uf: &mut UnionFind, path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut rec = [0u8; 8];
    let n = uf.len() as u32;
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let a = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let b = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        if a >= n || b >= n {
            return Err(format!("{}: pair ({a}, {b}) names a document past {n}", path.display()));
        }
        uf.union(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_component_minima_whatever_the_union_order() {
        let pairs = [(5u32, 9u32), (9, 2), (7, 8), (3, 3), (8, 6), (1, 0)];
        let mut a = UnionFind::new(10);
        for &(x, y) in &pairs {
            a.union(x, y);
        }
        let mut b = UnionFind::new(10);
        for &(x, y) in pairs.iter().rev() {
            b.union(y, x);
        }
        let (ra, rb) = (a.into_roots(), b.into_roots());
        assert_eq!(ra, rb);
        assert_eq!(ra, vec![0, 0, 2, 3, 4, 2, 6, 6, 6, 2]);
    }

    #[test]
    fn a_long_chain_collapses_to_its_first_element() {
        let n = 100_000;
        let mut uf = UnionFind::new(n);
        for i in (1..n).rev() {
            assert!(uf.union(i, i - 1));
        }
        assert!(!uf.union(0, n - 1));
        assert!(uf.into_roots().iter().all(|&r| r == 0));
    }

    #[test]
    fn pair_files_round_trip_and_reject_out_of_range_documents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.bin");
        let mut w = PairWriter::create(&p).unwrap();
        w.push(3, 1).unwrap();
        w.push(1, 2).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let mut uf = UnionFind::new(4);
        union_pairs_file(&mut uf, &p).unwrap();
        assert_eq!(uf.into_roots(), vec![0, 1, 1, 1]);
        let mut small = UnionFind::new(2);
        let err = union_pairs_file(&mut small, &p).unwrap_err();
        assert!(err.contains("pair (3, 1)"), "{err}");
    }
}
