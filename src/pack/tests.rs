//! Packing and loading together: splits, thread counts, striping, resume.

use super::docs::DocStore;
use super::loader::{Loader, Position};
use super::*;
use std::collections::BTreeSet;

fn store(n: usize, mask: bool) -> DocStore {
    let lengths: Vec<u32> = (0..n).map(|i| ((i as u64 * 2_654_435_761) % 300) as u32 + 1).collect();
    // Token ids encode their document (id / 1000 - 1), so rows can be
    // traced back; none is the pad id 0.
    let ids: Vec<u32> = lengths
        .iter()
        .enumerate()
        .flat_map(|(d, &l)| (0..l).map(move |j| (d as u32 + 1) * 1000 + j))
        .collect();
    let m = mask.then(|| ids.iter().map(|t| (t % 2) as u8).collect());
    DocStore::from_vecs(ids, m, &lengths).unwrap() // ok: test module
}

fn cfg(mode: Mode, val: ValSplit) -> PackConfig {
    PackConfig {
        seq_len: 63,
        mode,
        crop: false,
        val,
        shuffle: true,
        rows_per_file: 100,
        seed: 42,
    }
}

const META: TokenMeta = TokenMeta {
    vocab_size: None,
    bos_id: None,
    eos_id: Some(1),
    pad_id: Some(0),
    end_id: None,
};

/// Packs into a fresh directory with a manifest, as a pipeline would.
fn packed(d: &DocStore, c: &PackConfig) -> (tempfile::TempDir, PackOutput) {
    let dir = tempfile::tempdir().unwrap(); // ok: test module
    let o = pack_docs(d, dir.path(), c, &META, &NoProgress).unwrap(); // ok: test module
    let m = standalone::manifest(&o, c, &META, None, 0.0);
    let text = serde_json::to_string(&m).unwrap(); // ok: test module
    std::fs::write(dir.path().join("manifest.json"), text).unwrap(); // ok: test module
    (dir, o)
}

fn docs_of(rows: &[u32]) -> BTreeSet<u32> {
    rows.iter().filter(|&&t| t != 0).map(|t| t / 1000 - 1).collect()
}

#[test]
fn splits_are_disjoint_by_document_and_deterministic() {
    let d = store(2000, false);
    for mode in [Mode::Concat, Mode::Bestfit] {
        let c = cfg(mode, ValSplit::Fraction(0.1));
        let (a, oa) = packed(&d, &c);
        let (b, ob) = packed(&d, &c);
        assert_eq!(oa.rows_hash, ob.rows_hash, "same seed, same rows");
        assert_eq!(oa.splits["val"].docs, 200);
        let all = |dir: &Path, split: &str| {
            let mut l = Loader::open(dir, split, 1, 0, 1, 0).unwrap().in_order(); // ok: test module
            (0..l.rows()).flat_map(|_| l.next_batch().tokens).collect::<Vec<u32>>()
        };
        let (train, val) = (all(a.path(), "train"), all(a.path(), "val"));
        assert_eq!(train, all(b.path(), "train"));
        let (tdocs, vdocs) = (docs_of(&train), docs_of(&val));
        assert!(vdocs.len() > 150 && tdocs.len() > 1500, "{mode:?}: {} {}", vdocs.len(), tdocs.len());
        let shared: Vec<_> = tdocs.intersection(&vdocs).collect();
        assert!(shared.is_empty(), "{mode:?}: documents in both splits: {shared:?}");
        let mut other = c.clone();
        other.seed = 43;
        let (_, oc) = packed(&d, &other);
        assert_ne!(oa.rows_hash, oc.rows_hash, "another seed, another split and order");
    }
}

#[test]
fn output_is_the_same_for_any_thread_count() {
    let d = store(3000, true);
    for mode in [Mode::Concat, Mode::Bestfit] {
        let c = cfg(mode, ValSplit::Docs(50));
        let hashes: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&t| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap(); // ok: test module
                let (dir, o) = pool.install(|| packed(&d, &c));
                let mut l = Loader::open(dir.path(), "train", 4, 0, 1, 9).unwrap(); // ok: test module
                let first = pool.install(|| l.next_batch());
                (o.rows_hash, o.stats(), first)
            })
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{mode:?}");
    }
}

#[test]
fn ranks_stripe_an_epoch_and_cover_every_row_once() {
    let d = store(3000, true);
    let (dir, o) = packed(&d, &cfg(Mode::Bestfit, ValSplit::None));
    let rows = o.splits["train"].rows;
    let (world, b) = (4usize, 3usize);
    let mut seen: Vec<u64> = Vec::new();
    let mut per_rank = Vec::new();
    for rank in 0..world {
        let mut l = Loader::open(dir.path(), "train", b, rank, world, 5).unwrap(); // ok: test module
        assert!(l.is_zero_copy(), "rows come straight from the mapped files");
        assert!(l.has_loss_mask());
        let steps = l.steps_per_epoch();
        assert_eq!(steps, rows / world as u64 / b as u64);
        let mut mine = Vec::new();
        for _ in 0..steps {
            let batch = l.next_batch();
            assert_eq!(batch.tokens.len(), b * 64);
            assert_eq!(batch.loss_mask.as_ref().map(Vec::len), Some(b * 64));
            assert_eq!(batch.starts(0)[0], 0, "bestfit rows start at a document");
            mine.extend(batch.rows);
        }
        assert_eq!(l.position(), Position { epoch: 1, step: 0 });
        per_rank.push(mine.clone());
        seen.extend(mine);
    }
    // Rank r holds positions r, r + world, ... of one permutation.
    let order = shuffle::permutation(rows, 5, "kiln.loader.epoch", 0);
    for (r, mine) in per_rank.iter().enumerate() {
        let want: Vec<u64> = (0..mine.len()).map(|k| order[k * world + r]).collect();
        assert_eq!(mine, &want);
    }
    let n = seen.len() as u64;
    let unique: BTreeSet<u64> = seen.into_iter().collect();
    assert_eq!(unique.len() as u64, n, "no row twice in an epoch");
    assert_eq!(n, rows - rows % (world * b) as u64, "all rows but the remainder of an uneven split");
    // With rows divisible by world × batch, the union is every row exactly once.
    let mut l1 = Loader::open(dir.path(), "train", 1, 0, 1, 5).unwrap(); // ok: test module
    let all: BTreeSet<u64> = (0..rows).flat_map(|_| l1.next_batch().rows).collect();
    assert_eq!(all, (0..rows).collect());
}

#[test]
fn a_resumed_loader_continues_exactly() {
    let d = store(2000, false);
    let (dir, _) = packed(&d, &cfg(Mode::Concat, ValSplit::None));
    let mut a = Loader::open(dir.path(), "train", 5, 1, 2, 11).unwrap(); // ok: test module
    assert!(!a.has_loss_mask());
    // Run past an epoch boundary, save, then compare the continuations.
    let steps = a.steps_per_epoch();
    for _ in 0..steps + 3 {
        a.next_batch();
    }
    let saved = serde_json::to_string(&a.position()).unwrap(); // ok: test module
    let expect: Vec<_> = (0..steps + 2).map(|_| a.next_batch()).collect();
    let mut b = Loader::open(dir.path(), "train", 5, 1, 2, 11).unwrap(); // ok: test module
    b.resume(serde_json::from_str(&saved).unwrap()).unwrap(); // ok: test module
    let got: Vec<_> = (0..steps + 2).map(|_| b.next_batch()).collect();
    assert_eq!(got, expect);
    assert_eq!(expect[0].position, Position { epoch: 1, step: 3 });
    assert_ne!(
        expect[0].rows,
        Loader::open(dir.path(), "train", 5, 1, 2, 11).unwrap().next_batch().rows // ok: test module
    );
    assert!(b.resume(Position { epoch: 0, step: steps }).is_err());
}

#[test]
fn loader_errors_say_what_is_wrong() {
    let d = store(200, false);
    let (dir, _) = packed(&d, &cfg(Mode::Concat, ValSplit::None));
    let err = |r: Result<Loader, loader::LoadError>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(Loader::open(dir.path(), "test", 1, 0, 1, 0)).contains("no split `test`"));
    assert!(err(Loader::open(dir.path(), "train", 1, 2, 2, 0)).contains("rank < world"));
    assert!(err(Loader::open(dir.path(), "train", 100_000, 0, 1, 0)).contains("fewer than batch_size"));
    assert!(err(Loader::open(Path::new("/nonexistent"), "train", 1, 0, 1, 0)).contains("not a finished artifact"));
}

#[test]
fn cancelling_stops_packing() {
    struct Stop;
    impl Progress for Stop {
        fn cancelled(&self) -> bool {
            true
        }
    }
    let d = store(100, false);
    let dir = tempfile::tempdir().unwrap(); // ok: test module
    let r = pack_docs(&d, dir.path(), &cfg(Mode::Bestfit, ValSplit::None), &META, &Stop);
    assert!(matches!(r, Err(PackError::Cancelled)), "{r:?}");
}
