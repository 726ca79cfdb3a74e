//! External sort: fixed-size records collected up to a memory budget,
//! sorted and spilled to disk as runs, then merged k ways. Memory stays
//! under the budget whatever the number of records; disk holds every
//! record once (plus one extra run during an intermediate merge).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A fixed-size record that sorts by its `Ord`.
pub trait Record: Copy + Ord + Send {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes `SIZE` bytes.
    fn encode(&self, out: &mut [u8]);
    /// Reads `SIZE` bytes.
    fn decode(b: &[u8]) -> Self;
}

/// A 64-bit key and a document index: a band bucket entry, or a line hash
/// and the document holding it. Sorted by key, then document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyDoc {
    /// The key.
    pub key: u64,
    /// Global document index.
    pub doc: u32,
}

impl Record for KeyDoc {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.key.to_le_bytes());
        out[8..12].copy_from_slice(&self.doc.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut k = [0u8; 8];
        k.copy_from_slice(&b[..8]);
        let mut d = [0u8; 4];
        d.copy_from_slice(&b[8..12]);
        KeyDoc {
            key: u64::from_le_bytes(k),
            doc: u32::from_le_bytes(d),
        }
    }
}

/// A 128-bit key and a document index (exact dedup: a collision between
/// different texts is then out of reach, where 64 bits would risk one in a
/// few thousand at 10^8 documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WideKeyDoc {
    /// The key.
    pub key: u128,
    /// Global document index.
    pub doc: u32,
}

impl Record for WideKeyDoc {
    const SIZE: usize = 20;
    fn encode(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..20].copy_from_slice(&self.doc.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(&b[..16]);
        let mut d = [0u8; 4];
        d.copy_from_slice(&b[16..20]);
        WideKeyDoc {
            key: u128::from_le_bytes(k),
            doc: u32::from_le_bytes(d),
        }
    }
}

/// Read buffer per run during a merge: the merge fan-in is the budget
/// divided by this.
const READ_BUF: usize = 64 << 10;

/// Collects records, spilling sorted runs to `dir` when the budget fills.
pub struct Sorter<R: Record> {
    dir: PathBuf,
    name: String,
    buf: Vec<R>,
    cap: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    next_run: usize,
    disk_bytes: u64,
    peak_disk_bytes: u64,
    /// Runs written by someone else (a shard's part): read, never deleted.
    borrowed: HashSet<PathBuf>,
}

/// What a sort cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct SortStats {
    /// Records sorted.
    pub records: u64,
    /// Runs spilled to disk (0: it fit in memory).
    pub runs: u64,
    /// Most bytes the runs held on disk at once.
    pub peak_spill_bytes: u64,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl<R: Record> Sorter<R> {
    /// A sorter holding at most `budget_bytes` of records in memory (at
    /// least 1,024 records), spilling runs as `dir/<name>-<n>.run`.
    pub fn new(dir: &Path, name: &str, budget_bytes: usize) -> Self {
        let cap = (budget_bytes / std::mem::size_of::<R>().max(1)).max(1024);
        Sorter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            buf: Vec::new(),
            cap,
            budget: budget_bytes,
            runs: Vec::new(),
            next_run: 0,
            disk_bytes: 0,
            peak_disk_bytes: 0,
            borrowed: HashSet::new(),
        }
    }

    /// A sorter that starts from sorted `runs` written elsewhere (by
    /// [`Sorter::finish_runs`] in another process): it merges them with
    /// whatever is pushed, and leaves them on disk.
    pub fn with_runs(dir: &Path, name: &str, budget_bytes: usize, runs: Vec<PathBuf>) -> Result<Self, String> {
        let mut s = Sorter::new(dir, name, budget_bytes);
        for p in &runs {
            let len = std::fs::metadata(p).map_err(|e| io_err("cannot read sorted run", p, e))?.len();
            if len % R::SIZE as u64 != 0 {
                return Err(format!(
                    "{}: {len} bytes is not a whole number of {}-byte records",
                    p.display(),
                    R::SIZE
                ));
            }
            s.add_disk(len);
        }
        s.borrowed = runs.iter().cloned().collect();
        s.runs = runs;
        Ok(s)
    }

    /// Sorts what is buffered into a last run and hands over every run,
    /// for a later [`Sorter::with_runs`]; the files are the caller's now.
    pub fn finish_runs(mut self) -> Result<(Vec<PathBuf>, SortStats), String> {
        if !self.buf.is_empty() {
            self.spill()?;
        }
        let stats = SortStats {
            records: self.disk_bytes / R::SIZE as u64,
            runs: self.runs.len() as u64,
            peak_spill_bytes: self.peak_disk_bytes,
        };
        Ok((std::mem::take(&mut self.runs), stats))
    }

    /// Adds one record.
    pub fn push(&mut self, r: R) -> Result<(), String> {
        if self.buf.len() >= self.cap {
            self.spill()?;
        }
        if self.buf.len() == self.buf.capacity() {
            // Double, but never past the cap (large reallocations move pages
            // with mremap, so the old buffer is not held beside the new one).
            let want = (self.buf.capacity() * 2).clamp(1024, self.cap);
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.push(r);
        Ok(())
    }

    fn run_path(&mut self) -> PathBuf {
        self.next_run += 1;
        self.dir.join(format!("{}-{:05}.run", self.name, self.next_run))
    }

    fn spill(&mut self) -> Result<(), String> {
        self.buf.sort_unstable();
        let path = self.run_path();
        let f = File::create(&path).map_err(|e| io_err("cannot create spill run", &path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut rec = vec![0u8; R::SIZE];
        for r in &self.buf {
            r.encode(&mut rec);
            w.write_all(&rec).map_err(|e| io_err("cannot write spill run", &path, e))?;
        }
        w.flush().map_err(|e| io_err("cannot write spill run", &path, e))?;
        self.add_disk((self.buf.len() * R::SIZE) as u64);
        self.buf.clear();
        self.runs.push(path);
        Ok(())
    }

    fn add_disk(&mut self, n: u64) {
        self.disk_bytes += n;
        self.peak_disk_bytes = self.peak_disk_bytes.max(self.disk_bytes);
    }

    /// Sorts everything and returns the records in order. Merges runs in
    /// groups first when there are more than the budget's fan-in allows.
    pub fn finish(mut self) -> Result<(Merged<R>, SortStats), String> {
        let mut stats = SortStats {
            records: self.buf.len() as u64,
            ..Default::default()
        };
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            return Ok((Merged::Memory(std::mem::take(&mut self.buf).into_iter()), stats));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        stats.runs = self.runs.len() as u64;
        let fan_in = (self.budget / READ_BUF).clamp(2, 512);
        while self.runs.len() > fan_in {
            let group: Vec<PathBuf> = self.runs.drain(..fan_in).collect();
            let bytes = group.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
            let path = self.run_path();
            let f = File::create(&path).map_err(|e| io_err("cannot create spill run", &path, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let mut rec = vec![0u8; R::SIZE];
            self.add_disk(bytes);
            for r in Merge::<R>::open(&group, &self.borrowed)? {
                r?.encode(&mut rec);
                w.write_all(&rec).map_err(|e| io_err("cannot write spill run", &path, e))?;
            }
            w.flush().map_err(|e| io_err("cannot write spill run", &path, e))?;
            for p in group.iter().filter(|p| !self.borrowed.contains(*p)) {
                let _ = std::fs::remove_file(p);
            }
            self.disk_bytes -= bytes;
            self.runs.push(path);
        }
        stats.records = self.disk_bytes / R::SIZE as u64;
        stats.peak_spill_bytes = self.peak_disk_bytes;
        let runs = std::mem::take(&mut self.runs);
        Ok((Merged::Disk(Merge::open(&runs, &self.borrowed)?), stats))
    }
}

impl<R: Record> Drop for Sorter<R> {
    fn drop(&mut self) {
        for p in self.runs.iter().filter(|p| !self.borrowed.contains(*p)) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Records in sorted order, from memory or from merged runs.
pub enum Merged<R: Record> {
    /// Everything fit in the budget.
    Memory(std::vec::IntoIter<R>),
    /// A k-way merge of runs on disk (its own deleted when dropped).
    Disk(Merge<R>),
}

impl<R: Record> Iterator for Merged<R> {
    type Item = Result<R, String>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Merged::Memory(it) => it.next().map(Ok),
            Merged::Disk(m) => m.next(),
        }
    }
}

struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
    /// Deleted when the merge is dropped (not a borrowed run).
    owned: bool,
}

/// A k-way merge of sorted runs with a binary heap. Ties break by run
/// order, though equal records are identical anyway.
pub struct Merge<R: Record> {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<(R, usize)>>,
    rec: Vec<u8>,
    failed: bool,
}

impl<R: Record> Merge<R> {
    fn open(paths: &[PathBuf], borrowed: &HashSet<PathBuf>) -> Result<Self, String> {
        let mut m = Merge {
            readers: Vec::with_capacity(paths.len()),
            heap: BinaryHeap::with_capacity(paths.len()),
            rec: vec![0u8; R::SIZE],
            failed: false,
        };
        for (i, p) in paths.iter().enumerate() {
            let f = File::open(p).map_err(|e| io_err("cannot open spill run", p, e))?;
            m.readers.push(RunReader {
                path: p.clone(),
                r: BufReader::with_capacity(READ_BUF, f),
                owned: !borrowed.contains(p),
            });
            if let Some(r) = m.read(i)? {
                m.heap.push(Reverse((r, i)));
            }
        }
        Ok(m)
    }

    fn read(&mut self, i: usize) -> Result<Option<R>, String> {
        let rd = &mut self.readers[i];
        match rd.r.read_exact(&mut self.rec) {
            Ok(()) => Ok(Some(R::decode(&self.rec))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_err("cannot read spill run", &rd.path, e)),
        }
    }
}

impl<R: Record> Iterator for Merge<R> {
    type Item = Result<R, String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Reverse((r, i)) = self.heap.pop()?;
        match self.read(i) {
            Ok(Some(n)) => self.heap.push(Reverse((n, i))),
            Ok(None) => {}
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        }
        Some(Ok(r))
    }
}

impl<R: Record> Drop for Merge<R> {
    fn drop(&mut self) {
        for r in self.readers.iter().filter(|r| r.owned) {
            let _ = std::fs::remove_file(&r.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u64) -> Vec<KeyDoc> {
        (0..n)
            .map(|i| KeyDoc {
                key: i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 997,
                doc: (i % 1013) as u32,
            })
            .collect()
    }

    #[test]
    fn a_tiny_budget_spills_many_runs_and_merges_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let input = records(50_000);
        // 16 kB: 1,024 records per run → 49 runs, and a fan-in of 2, so
        // the intermediate merges run too.
        let mut s = Sorter::new(dir.path(), "t", 16 << 10);
        for r in &input {
            s.push(*r).unwrap();
        }
        let (merged, stats) = s.finish().unwrap();
        let got: Vec<KeyDoc> = merged.map(Result::unwrap).collect();
        let mut want = input.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(stats.runs, 49);
        assert_eq!(stats.records, 50_000);
        assert!(stats.peak_spill_bytes >= 50_000 * 12, "{stats:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "runs are deleted after the merge"
        );
    }

    #[test]
    fn runs_handed_over_merge_in_another_sorter_and_survive_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let input = records(20_000);
        // Two "shards", each sorting half into runs of its own.
        let mut runs = Vec::new();
        for (i, half) in input.chunks(10_000).enumerate() {
            let mut s = Sorter::new(&a, &format!("part{i}"), 64 << 10);
            for r in half {
                s.push(*r).unwrap();
            }
            let (r, st) = s.finish_runs().unwrap();
            assert_eq!(st.records, 10_000);
            runs.extend(r);
        }
        let kept: Vec<PathBuf> = runs.clone();
        // A fan-in of 2 over 4 runs makes the merging sorter write runs of its own.
        let s = Sorter::<KeyDoc>::with_runs(&b, "merge", 16 << 10, runs).unwrap();
        let (merged, stats) = s.finish().unwrap();
        let got: Vec<KeyDoc> = merged.map(Result::unwrap).collect();
        let mut want = input.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(stats.records, 20_000);
        assert!(kept.iter().all(|p| p.exists()), "borrowed runs were deleted");
        assert_eq!(std::fs::read_dir(&b).unwrap().count(), 0, "own runs are deleted");
        // A damaged run is refused up front.
        let cut = std::fs::read(&kept[0]).unwrap();
        std::fs::write(&kept[0], &cut[..cut.len() - 1]).unwrap();
        let err = Sorter::<KeyDoc>::with_runs(&b, "merge", 16 << 10, kept.clone()).err().unwrap();
        assert!(err.contains("not a whole number"), "{err}");
    }

    #[test]
    fn wide_records_round_trip_and_small_inputs_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path(), "w", 1 << 20);
        for i in (0..100u32).rev() {
            s.push(WideKeyDoc {
                key: (i as u128) << 100,
                doc: i,
            })
            .unwrap();
        }
        let (merged, stats) = s.finish().unwrap();
        assert_eq!(stats.runs, 0);
        let docs: Vec<u32> = merged.map(|r| r.unwrap().doc).collect();
        assert_eq!(docs, (0..100).collect::<Vec<_>>());
        let r = WideKeyDoc {
            key: u128::MAX - 5,
            doc: 7,
        };
        let mut b = [0u8; 20];
        r.encode(&mut b);
        assert_eq!(WideKeyDoc::decode(&b), r);
    }
}
