//! The stages of each dedup method, each a function over files on disk so
//! that it can run alone (see the module docs of [`super`]). They read the
//! input's text column batch by batch; per-document work inside a batch
//! runs on rayon, and results are written in input order, so the output is
//! the same for any thread count.

use super::components::{PairWriter, UnionFind, union_pairs_file};
use super::lines::{FrequentLines, line_hashes};
use super::minhash::{MinHasher, NO_SIGNATURE};
use super::spill::{KeyDoc, Merged, Record, SortStats, Sorter, WideKeyDoc};
use super::{DedupError, DedupInput, MinhashConfig, Simplify, TextColumn};
use crate::io::table::parquet_batches;
use crate::progress::Progress;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Counts a dedup run reports (the manifest's `stats`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct DedupStats {
    /// Documents in.
    pub docs: u64,
    /// Documents with no words (never matched by `minhash`).
    pub no_signature: u64,
    /// Candidate pairs emitted by the buckets (adjacent pairs of equal keys).
    pub candidate_pairs: u64,
    /// Groups of two or more documents.
    pub components: u64,
    /// Documents that duplicate an earlier one.
    pub duplicates: u64,
    /// Sorted runs spilled to disk.
    pub spill_runs: u64,
    /// Sum over concurrent sorts of their peak bytes on disk.
    pub peak_spill_bytes: u64,
    /// Bytes of signature and pair files written between stages.
    pub intermediate_bytes: u64,
    /// Distinct lines over `max_occurrences` (`lines` only).
    pub frequent_lines: u64,
}

impl DedupStats {
    fn add_sort(&mut self, s: &SortStats) {
        self.spill_runs += s.runs;
        self.peak_spill_bytes += s.peak_spill_bytes;
    }

    /// Counts the components and duplicates of finished roots.
    fn count_roots(&mut self, roots: &[u32]) {
        let mut has_dup = vec![false; roots.len()];
        for (i, &r) in roots.iter().enumerate() {
            if r as usize != i {
                self.duplicates += 1;
                has_dup[r as usize] = true;
            }
        }
        self.components = has_dup.iter().filter(|&&b| b).count() as u64;
    }
}

/// Memory kept back from the sort buffers for the batch being read and
/// the writers: a quarter of the budget, at most 64 MiB.
fn sort_budget(memory: u64) -> u64 {
    memory - (memory / 4).min(64 << 20)
}

fn check_count(inp: &DedupInput) -> Result<u32, DedupError> {
    let n = inp.docs();
    u32::try_from(n)
        .ok()
        .filter(|&n| n < u32::MAX)
        .ok_or_else(|| DedupError::Failed(format!("{n} documents: dedup numbers documents with u32, at most 4,294,967,294")))
}

/// Calls `f` on each batch of input file `fi` in order; checks the row count
/// against the manifest.
fn for_each_batch(
    inp: &DedupInput,
    fi: usize,
    hooks: &dyn Progress,
    mut f: impl FnMut(&RecordBatch, TextColumn<'_>) -> Result<(), DedupError>,
) -> Result<(), DedupError> {
    let file = &inp.files[fi];
    let mut rows = 0u64;
    for batch in parquet_batches(&file.path)? {
        if hooks.cancelled() {
            return Err(DedupError::Cancelled);
        }
        let batch = batch?;
        let col = TextColumn::of(&batch, &inp.column, &file.path)?;
        f(&batch, col)?;
        rows += batch.num_rows() as u64;
        hooks.inc(batch.num_rows() as u64);
    }
    if rows != file.rows {
        return Err(DedupError::Failed(format!(
            "{}: {rows} rows read but the manifest says {}",
            file.path.display(),
            file.rows
        )));
    }
    Ok(())
}

/// Per-thread scratch for signatures.
#[derive(Default)]
struct SigScratch {
    text: String,
    words: Vec<u64>,
    shingles: Vec<u64>,
    sig: Vec<u64>,
}

/// Stage 1 of `minhash`, for input file `fi`: writes each document's band
/// keys (`bands` little-endian u64, [`NO_SIGNATURE`] for a document without
/// words) to `out`. Returns the documents without a signature.
pub fn minhash_signatures(
    inp: &DedupInput,
    fi: usize,
    cfg: &MinhashConfig,
    hasher: &MinHasher,
    out: &Path,
    hooks: &dyn Progress,
) -> Result<u64, DedupError> {
    let f = File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let bands = cfg.bands;
    let mut empty = 0u64;
    let mut keys: Vec<u64> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for_each_batch(inp, fi, hooks, |batch, col| {
        keys.clear();
        keys.resize(batch.num_rows() * bands, 0);
        keys.par_chunks_mut(bands)
            .enumerate()
            .for_each_init(SigScratch::default, |s, (i, k)| {
                inp.simplify.apply(col.get(i), &mut s.text);
                super::simplify::shingles(&s.text, cfg.n_grams, &mut s.words, &mut s.shingles);
                if s.shingles.is_empty() {
                    k.fill(NO_SIGNATURE);
                    return;
                }
                s.sig.resize(hasher.len(), 0);
                hasher.signature(&s.shingles, &mut s.sig);
                hasher.band_keys(&s.sig, k);
            });
        empty += keys.chunks_exact(bands).filter(|k| k[0] == NO_SIGNATURE).count() as u64;
        bytes.clear();
        bytes.extend(keys.iter().flat_map(|k| k.to_le_bytes()));
        w.write_all(&bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        Ok(())
    })?;
    w.flush().map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(empty)
}

/// Stage 2 of `minhash`, for one band: every document's key in this band
/// through an external sort of at most `budget` bytes; each document whose
/// key equals the previous one's is paired with the first document of that
/// key (so a bucket of k documents gives k − 1 pairs, enough for its
/// component). Writes the pairs to `pairs`; returns their count.
pub fn band_pairs(
    sig_files: &[(PathBuf, u64)],
    bands: usize,
    band: usize,
    budget: u64,
    tmp: &Path,
    pairs: &Path,
) -> Result<(u64, SortStats), DedupError> {
    let mut sorter = Sorter::<KeyDoc>::new(tmp, &format!("band{band:03}"), budget as usize);
    let mut rec = vec![0u8; bands * 8];
    for (path, offset) in sig_files {
        let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut doc = *offset;
        loop {
            match r.read_exact(&mut rec) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
            }
            let mut k = [0u8; 8];
            k.copy_from_slice(&rec[band * 8..band * 8 + 8]);
            let key = u64::from_le_bytes(k);
            if key != NO_SIGNATURE {
                sorter.push(KeyDoc { key, doc: doc as u32 })?;
            }
            doc += 1;
        }
    }
    let (merged, stats) = sorter.finish()?;
    let mut w = PairWriter::create(pairs)?;
    let mut group: Option<KeyDoc> = None;
    for r in merged {
        let r = r?;
        match group {
            Some(g) if g.key == r.key => w.push(g.doc, r.doc)?,
            _ => group = Some(r),
        }
    }
    Ok((w.finish()?, stats))
}

/// Stage 3 of `minhash`: the components of all pair files over `n`
/// documents; returns each document's root (its component's first member).
pub fn cluster(n: u32, pair_files: &[PathBuf]) -> Result<Vec<u32>, DedupError> {
    let mut uf = UnionFind::new(n);
    for p in pair_files {
        union_pairs_file(&mut uf, p)?;
    }
    Ok(uf.into_roots())
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Where stage 1 writes the band keys of input file `fi` inside `dir`.
pub fn signature_path(dir: &Path, fi: usize) -> PathBuf {
    dir.join(format!("sig-{fi:05}.bin"))
}

/// Stage 1 of `minhash` for input files `files` (a shard's slice, or all):
/// one band-key file each in `dir`, with the global index of its first
/// document. Adds the documents without words and the bytes written to
/// `stats`.
pub fn minhash_signature_files(
    inp: &DedupInput,
    cfg: &MinhashConfig,
    files: Range<usize>,
    dir: &Path,
    stats: &mut DedupStats,
    hooks: &dyn Progress,
) -> Result<Vec<(PathBuf, u64)>, DedupError> {
    check_count(inp)?;
    let hasher = MinHasher::new(cfg.bands, cfg.rows_per_band, cfg.hash_seed);
    let offsets = inp.offsets();
    let mut sig_files = Vec::new();
    for fi in files {
        let path = signature_path(dir, fi);
        stats.no_signature += minhash_signatures(inp, fi, cfg, &hasher, &path, hooks)?;
        stats.intermediate_bytes += file_size(&path);
        sig_files.push((path, offsets[fi]));
    }
    Ok(sig_files)
}

/// Stage 2 of `minhash` for bands `bands` (all of them, or a bucket
/// job's share): one pair file per band in `out`, from the band-key files
/// of every input file (in input order, as [`minhash_signature_files`]
/// numbers them). Sorts spill to the input's `work_dir`. Adds the pairs,
/// spills and bytes to `stats`.
pub fn band_pair_files(
    inp: &DedupInput,
    cfg: &MinhashConfig,
    sig_files: &[(PathBuf, u64)],
    bands: Range<usize>,
    out: &Path,
    stats: &mut DedupStats,
    hooks: &dyn Progress,
) -> Result<Vec<PathBuf>, DedupError> {
    check_count(inp)?;
    check_signature_files(inp, cfg, sig_files)?;
    let dir = &inp.work_dir;
    // Every band may sort at once, so each gets an equal share of the budget.
    let budget = sort_budget(inp.memory_bytes) / bands.len().max(1) as u64;
    let results: Vec<Result<(PathBuf, u64, SortStats), DedupError>> = bands
        .into_par_iter()
        .map(|b| {
            if hooks.cancelled() {
                return Err(DedupError::Cancelled);
            }
            let pairs = out.join(format!("pairs-{b:03}.bin"));
            let (count, s) = band_pairs(sig_files, cfg.bands, b, budget, dir, &pairs)?;
            Ok((pairs, count, s))
        })
        .collect();
    let mut pair_files = Vec::new();
    for r in results {
        let (p, count, s) = r?;
        stats.candidate_pairs += count;
        stats.add_sort(&s);
        stats.intermediate_bytes += file_size(&p);
        pair_files.push(p);
    }
    hooks.note(&format!(
        "buckets: {} candidate pairs, {} spill runs, peak spill {} bytes",
        stats.candidate_pairs, stats.spill_runs, stats.peak_spill_bytes
    ));
    Ok(pair_files)
}

/// Stage 3 of `minhash`: each document's root from the pair files of every
/// band; counts the components and duplicates into `stats`.
pub fn roots_from_pairs(inp: &DedupInput, pair_files: &[PathBuf], stats: &mut DedupStats) -> Result<Vec<u32>, DedupError> {
    let n = check_count(inp)?;
    stats.docs = n as u64;
    let roots = cluster(n, pair_files)?;
    stats.count_roots(&roots);
    Ok(roots)
}

/// Stages 2–3 of `minhash` from the band-key files of every input file
/// (in input order, as [`minhash_signature_files`] numbers them): each
/// document's root. The pair files go to the input's `work_dir`.
pub fn minhash_clusters(
    inp: &DedupInput,
    cfg: &MinhashConfig,
    sig_files: &[(PathBuf, u64)],
    stats: &mut DedupStats,
    hooks: &dyn Progress,
) -> Result<Vec<u32>, DedupError> {
    let pair_files = band_pair_files(inp, cfg, sig_files, 0..cfg.bands, &inp.work_dir, stats, hooks)?;
    roots_from_pairs(inp, &pair_files, stats)
}

/// Checks that `sig_files` hold one record per document of each input
/// file: a short or long file (a shard's part damaged on disk) would
/// renumber every document after it.
fn check_signature_files(inp: &DedupInput, cfg: &MinhashConfig, sig_files: &[(PathBuf, u64)]) -> Result<(), DedupError> {
    if sig_files.len() != inp.files.len() {
        return Err(DedupError::Failed(format!(
            "{} signature files for {} input files",
            sig_files.len(),
            inp.files.len()
        )));
    }
    for ((path, first), (f, want_first)) in sig_files.iter().zip(inp.files.iter().zip(inp.offsets())) {
        let want = f.rows * cfg.bands as u64 * 8;
        let got = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if got != want || *first != want_first {
            return Err(DedupError::Failed(format!(
                "{}: {got} bytes of band keys for the {} documents of {} (want {want}: {} bands of 8 bytes each)",
                path.display(),
                f.rows,
                f.path.display(),
                cfg.bands
            )));
        }
    }
    Ok(())
}

/// Stages 1–3 of `minhash` over the whole input: each document's root.
pub fn minhash(inp: &DedupInput, cfg: &MinhashConfig, hooks: &dyn Progress) -> Result<(Vec<u32>, DedupStats), DedupError> {
    let mut stats = DedupStats::default();
    let sig_files = minhash_signature_files(inp, cfg, 0..inp.files.len(), &inp.work_dir, &mut stats, hooks)?;
    hooks.note(&format!(
        "signatures: {} documents, {} without words",
        inp.docs(),
        stats.no_signature
    ));
    let roots = minhash_clusters(inp, cfg, &sig_files, &mut stats, hooks)?;
    Ok((roots, stats))
}

/// The 128-bit key of a text for `exact`: blake3 of its normalised form.
pub fn exact_key(text: &str, simplify: &Simplify, scratch: &mut String) -> u128 {
    simplify.apply(text, scratch);
    let h = blake3::hash(scratch.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_le_bytes(k)
}

/// Computes one value per row of each batch of input files `files` on
/// rayon and hands them, in order with their global document index, to
/// `sink`.
fn per_doc<T: Send>(
    inp: &DedupInput,
    files: Range<usize>,
    hooks: &dyn Progress,
    f: impl Fn(&str, &mut String) -> T + Sync,
    mut sink: impl FnMut(u32, T) -> Result<(), DedupError>,
) -> Result<(), DedupError> {
    let offsets = inp.offsets();
    for fi in files {
        let mut doc = offsets[fi] as u32;
        for_each_batch(inp, fi, hooks, |batch, col| {
            let vals: Vec<T> = (0..batch.num_rows())
                .into_par_iter()
                .map_init(String::new, |s, i| f(col.get(i), s))
                .collect();
            for v in vals {
                sink(doc, v)?;
                doc += 1;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// What `exact` and `lines` sort: the record type, how documents make
/// records, and the share of the memory budget the sort gets.
pub trait SortedKeys {
    /// The record sorted.
    type Rec: Record;
    /// Names the sort's runs.
    const NAME: &'static str;
    /// Pushes the records of input files `files` into `sorter`.
    fn push(&self, inp: &DedupInput, files: Range<usize>, sorter: &mut Sorter<Self::Rec>, hooks: &dyn Progress) -> Result<(), DedupError>;
    /// The sort's share of `memory` bytes.
    fn budget(&self, memory: u64) -> usize;
}

/// `exact`'s records: the 128-bit key of each document's normalised text.
pub struct ExactKeys;

impl SortedKeys for ExactKeys {
    type Rec = WideKeyDoc;
    const NAME: &'static str = "exact";
    fn push(&self, inp: &DedupInput, files: Range<usize>, sorter: &mut Sorter<WideKeyDoc>, hooks: &dyn Progress) -> Result<(), DedupError> {
        per_doc(
            inp,
            files,
            hooks,
            |t, s| exact_key(t, &inp.simplify, s),
            |doc, key| Ok(sorter.push(WideKeyDoc { key, doc })?),
        )
    }
    fn budget(&self, memory: u64) -> usize {
        sort_budget(memory) as usize
    }
}

/// `lines`' records: one per normalised line of each document.
pub struct LineKeys;

impl SortedKeys for LineKeys {
    type Rec = KeyDoc;
    const NAME: &'static str = "lines";
    fn push(&self, inp: &DedupInput, files: Range<usize>, sorter: &mut Sorter<KeyDoc>, hooks: &dyn Progress) -> Result<(), DedupError> {
        let simplify = inp.simplify;
        per_doc(
            inp,
            files,
            hooks,
            |t, s| {
                let mut h = Vec::new();
                line_hashes(t, &simplify, s, &mut h);
                h
            },
            |doc, hashes| {
                for key in hashes {
                    sorter.push(KeyDoc { key, doc })?;
                }
                Ok(())
            },
        )
    }
    fn budget(&self, memory: u64) -> usize {
        // The frequent set stays in memory (8 bytes a line) while the sort
        // runs, so the sort takes half the budget.
        (sort_budget(memory) / 2) as usize
    }
}

/// Sorts the records of every document: in one pass over the input, or,
/// with `runs` from the shards ([`sorted_runs`]), by merging theirs.
fn sort_keys<K: SortedKeys>(
    keys: &K,
    inp: &DedupInput,
    runs: Option<Vec<PathBuf>>,
    stats: &mut DedupStats,
    hooks: &dyn Progress,
) -> Result<Merged<K::Rec>, DedupError> {
    let budget = keys.budget(inp.memory_bytes);
    let sorter = match runs {
        Some(r) => Sorter::with_runs(&inp.work_dir, K::NAME, budget, r)?,
        None => {
            let mut s = Sorter::new(&inp.work_dir, K::NAME, budget);
            keys.push(inp, 0..inp.files.len(), &mut s, hooks)?;
            s
        }
    };
    let (merged, s) = sorter.finish()?;
    stats.add_sort(&s);
    Ok(merged)
}

/// A shard of `exact` or `lines`: the records of input files `files`
/// sorted into runs in `dir`, which outlive this call (the shard's part).
pub fn sorted_runs<K: SortedKeys>(
    keys: &K,
    inp: &DedupInput,
    files: Range<usize>,
    dir: &Path,
    hooks: &dyn Progress,
) -> Result<(Vec<PathBuf>, SortStats), DedupError> {
    check_count(inp)?;
    let mut s = Sorter::new(dir, K::NAME, keys.budget(inp.memory_bytes));
    keys.push(inp, files, &mut s, hooks)?;
    Ok(s.finish_runs()?)
}

/// `exact`: documents whose normalised texts hash alike, through an
/// external sort of `(key, doc)`; each document's root is the first
/// document with its key. `runs`: the shards' sorted records, if sharded.
pub fn exact(inp: &DedupInput, runs: Option<Vec<PathBuf>>, hooks: &dyn Progress) -> Result<(Vec<u32>, DedupStats), DedupError> {
    let n = check_count(inp)?;
    let mut stats = DedupStats {
        docs: n as u64,
        ..Default::default()
    };
    let merged = sort_keys(&ExactKeys, inp, runs, &mut stats, hooks)?;
    let mut roots: Vec<u32> = (0..n).collect();
    let mut group: Option<WideKeyDoc> = None;
    for r in merged {
        let r = r?;
        if r.doc >= n {
            return Err(DedupError::Failed(format!("a sorted record names document {} of {n}", r.doc)));
        }
        match group {
            Some(g) if g.key == r.key => {
                roots[r.doc as usize] = g.doc;
                stats.candidate_pairs += 1;
            }
            _ => group = Some(r),
        }
    }
    stats.count_roots(&roots);
    Ok((roots, stats))
}

/// `lines`, first pass: the normalised lines found in more than
/// `max_occurrences` distinct documents, through an external sort of
/// `(line hash, doc)`. `runs`: the shards' sorted records, if sharded.
pub fn frequent_lines(
    inp: &DedupInput,
    max_occurrences: u64,
    runs: Option<Vec<PathBuf>>,
    hooks: &dyn Progress,
) -> Result<(FrequentLines, DedupStats), DedupError> {
    let n = check_count(inp)?;
    let mut stats = DedupStats {
        docs: n as u64,
        ..Default::default()
    };
    let merged = sort_keys(&LineKeys, inp, runs, &mut stats, hooks)?;
    let mut frequent = Vec::new();
    let mut cur: Option<(u64, u64)> = None;
    for r in merged {
        let r = r?;
        match &mut cur {
            Some((k, c)) if *k == r.key => *c += 1,
            _ => {
                if let Some((k, c)) = cur.take()
                    && c > max_occurrences
                {
                    frequent.push(k);
                }
                cur = Some((r.key, 1));
            }
        }
    }
    if let Some((k, c)) = cur
        && c > max_occurrences
    {
        frequent.push(k);
    }
    stats.frequent_lines = frequent.len() as u64;
    Ok((FrequentLines::from_sorted(frequent), stats))
}
