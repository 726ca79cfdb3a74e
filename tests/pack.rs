//! `pack` and the loader on a `tokens` artifact built by hand (Parquet
//! written with `PartWriter`, a manifest with the `tokens` contract), and,
//! when the tokenizer file is there, a whole read → tokenize → pack pipeline.

mod common;

use arrow::array::{ArrayRef, ListArray, StringArray, UInt8Array, UInt32Array, UInt64Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use kiln::exec::store::{FORMAT_VERSION, Manifest};
use kiln::io::writer::PartWriter;
use kiln::pack::loader::Loader;
use kiln::pack::standalone::pack_dir;
use kiln::pack::{Mode, NoProgress, PackConfig, ValSplit};
use kiln::spec::Kind;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

const PAD: u32 = 0;

/// Token ids of document `d`: `(d + 1) * 1000 + j`, so any token names its
/// document and position.
fn doc(d: usize, len: usize) -> Vec<u32> {
    (0..len as u32).map(|j| (d as u32 + 1) * 1000 + j).collect()
}

fn list<T: arrow::array::Array + 'static>(item: DataType, values: T, lens: &[usize]) -> ArrayRef {
    let field = Arc::new(Field::new_list_field(item, false));
    Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths(lens.iter().copied()),
        Arc::new(values),
        None,
    ))
}

/// Writes a `tokens` artifact of documents with `lens` tokens into `dir`,
/// split over two Parquet files, with a loss mask when `mask`.
fn tokens_artifact(dir: &Path, lens: &[usize], mask: bool) {
    let mut files = Vec::new();
    let halves = [(0, lens.len() / 2, "data"), (lens.len() / 2, lens.len(), "more")];
    for (a, b, sub) in halves {
        let l = &lens[a..b];
        let ids: Vec<u32> = (a..b).flat_map(|d| doc(d, lens[d])).collect();
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new((a..b).map(|d| Some(format!("doc{d}"))).collect::<StringArray>())),
            ("input_ids", list(DataType::UInt32, UInt32Array::from(ids.clone()), l)),
        ];
        if mask {
            let m: Vec<u8> = ids.iter().map(|t| (t % 3 != 0) as u8).collect();
            cols.push(("loss_mask", list(DataType::UInt8, UInt8Array::from(m), l)));
        }
        cols.push(("n_bytes", Arc::new(l.iter().map(|&n| n as u64 * 4).collect::<UInt64Array>())));
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let mut w = PartWriter::new(dir, sub, 1 << 30);
        w.write(&batch).unwrap();
        files.extend(w.finish().unwrap());
    }
    let m = Manifest {
        format_version: FORMAT_VERSION,
        kind: Kind::Tokens,
        node: "tokens".into(),
        op: "tokenize".into(),
        fingerprint: "feedface".into(),
        params: json!({}),
        inputs: BTreeMap::new(),
        seed: None,
        sources: json!(null),
        schema: vec![],
        rows: lens.len() as u64,
        rejected_rows: 0,
        bytes: 0,
        files,
        rejected_files: vec![],
        content_hash: None,
        rows_hash: Default::default(),
        wall_time_s: 0.0,
        peak_rss_bytes: None,
        stats: json!({}),
        extra: json!({"vocab_size": 1 << 30, "bos_id": 1, "eos_id": 2, "pad_id": PAD, "end_id": 3}),
        shard: None,
        parts: 1,
        completed_unix: 0,
        kiln_version: "test".into(),
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_string(&m).unwrap()).unwrap();
}

fn lengths(n: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7919 + 13) % 700).collect()
}

fn cfg(mode: Mode) -> PackConfig {
    PackConfig {
        seq_len: 127,
        mode,
        crop: false,
        val: ValSplit::None,
        shuffle: false,
        rows_per_file: 50,
        seed: 1,
    }
}

fn all_rows(dir: &Path, split: &str) -> (Vec<u32>, Option<Vec<u8>>, usize) {
    let mut l = Loader::open(dir, split, 1, 0, 1, 0).unwrap().in_order();
    let n = l.rows() as usize;
    let (mut t, mut m) = (Vec::new(), l.has_loss_mask().then(Vec::new));
    for _ in 0..n {
        let b = l.next_batch();
        t.extend(b.tokens);
        if let (Some(m), Some(bm)) = (m.as_mut(), b.loss_mask) {
            m.extend(bm);
        }
    }
    (t, m, n)
}

#[test]
fn concat_keeps_every_token_and_mask_in_order() {
    let d = tempfile::tempdir().unwrap();
    let lens = lengths(400);
    tokens_artifact(&d.path().join("tokens"), &lens, true);
    let out = d.path().join("packed");
    let m = pack_dir(&d.path().join("tokens"), &out, &cfg(Mode::Concat), &NoProgress).unwrap();
    assert_eq!(m.kind, Kind::Packed);
    let total: usize = lens.iter().sum();
    let s = &m.stats["pack"];
    assert_eq!(s["tokens_in"], total as u64);
    assert_eq!(s["dropped"], (total % 128) as u64);
    assert_eq!(s["empty_docs"], lens.iter().filter(|&&l| l == 0).count() as u64);
    assert_eq!(s["utilisation"], 1.0);
    assert_eq!(m.files[0].name, "train/part-00000.arrow");
    assert!(m.files.iter().all(|f| f.rows <= 50));
    assert_eq!(m.extra["splits"]["val"], json!([]));
    assert_eq!(m.extra["seq_len"], 127);
    assert_eq!(m.extra["pad_id"], PAD);
    assert_eq!(
        m.schema.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["tokens", "loss_mask", "doc_starts"]
    );
    assert!(m.content_hash.is_some());
    let (tokens, mask, rows) = all_rows(&out, "train");
    assert_eq!(rows as u64, m.rows);
    let want: Vec<u32> = (0..lens.len()).flat_map(|i| doc(i, lens[i])).collect();
    assert_eq!(tokens, want[..rows * 128], "the input, in order, cut every 128 tokens");
    let want_mask: Vec<u8> = want.iter().map(|t| (t % 3 != 0) as u8).collect();
    assert_eq!(mask.unwrap(), want_mask[..rows * 128]);
    assert!(!out.join(".spill").exists(), "no spill files left behind");
}

#[test]
fn bestfit_with_shuffle_and_validation() {
    let d = tempfile::tempdir().unwrap();
    let lens = lengths(600);
    tokens_artifact(&d.path().join("tokens"), &lens, false);
    let out = d.path().join("packed");
    let c = PackConfig {
        val: ValSplit::Fraction(0.05),
        shuffle: true,
        ..cfg(Mode::Bestfit)
    };
    let m = pack_dir(&d.path().join("tokens"), &out, &c, &NoProgress).unwrap();
    let s = &m.stats["pack"];
    let (out_tokens, padding) = (s["tokens_out"].as_u64().unwrap(), s["padding"].as_u64().unwrap());
    assert_eq!(out_tokens, lens.iter().sum::<usize>() as u64, "split, not cropped: nothing lost");
    assert_eq!(out_tokens + padding, m.rows * 128);
    assert_eq!(s["utilisation"].as_f64().unwrap(), out_tokens as f64 / (m.rows * 128) as f64);
    assert_eq!(s["docs"]["val"], 30);
    let mut docs_seen: Vec<BTreeSet<u32>> = Vec::new();
    for split in ["train", "val"] {
        let (tokens, mask, _) = all_rows(&out, split);
        let mask = mask.expect("bestfit rows carry a loss mask for their padding");
        assert!(tokens.iter().zip(&mask).all(|(&t, &m)| (t == PAD) == (m == 0)));
        docs_seen.push(tokens.iter().filter(|&&t| t != PAD).map(|t| t / 1000 - 1).collect());
    }
    assert!(docs_seen[0].is_disjoint(&docs_seen[1]), "no document in both splits");
    let non_empty = lens.iter().filter(|&&l| l > 0).count();
    assert_eq!(docs_seen[0].len() + docs_seen[1].len(), non_empty);
    // The same seed packs the same rows; the loader's own seed orders them.
    let again = pack_dir(&d.path().join("tokens"), &d.path().join("again"), &c, &NoProgress).unwrap();
    assert_eq!(again.content_hash, m.content_hash);
}

#[test]
fn bad_inputs_are_reported() {
    let d = tempfile::tempdir().unwrap();
    tokens_artifact(&d.path().join("tokens"), &lengths(50), false);
    let mpath = d.path().join("tokens/manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["extra"]["vocab_size"] = json!(2000);
    std::fs::write(&mpath, m.to_string()).unwrap();
    let e = pack_dir(&d.path().join("tokens"), &d.path().join("p"), &cfg(Mode::Concat), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("not below the vocabulary size 2000"), "{e}");
    m["extra"]["vocab_size"] = json!(null);
    m["kind"] = json!("documents");
    std::fs::write(&mpath, m.to_string()).unwrap();
    let e = pack_dir(&d.path().join("tokens"), &d.path().join("p"), &cfg(Mode::Concat), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("pack takes `tokens`"), "{e}");
    m["kind"] = json!("tokens");
    std::fs::write(&mpath, m.to_string()).unwrap();
    let big = PackConfig {
        seq_len: 1 << 20,
        ..cfg(Mode::Concat)
    };
    let e = pack_dir(&d.path().join("tokens"), &d.path().join("p"), &big, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no training rows"), "{e}");
    assert!(!d.path().join("p").exists(), "a failed pack leaves nothing");
    assert!(!d.path().join(".tmp").exists());
}

/// The whole data path on the bundled sample: read → train_tokenizer →
/// tokenize → pack (both modes), then the loader on the result.
#[test]
fn read_tokenize_pack_pipeline() {
    let d = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/docs.jsonl");
    let yaml = format!(
        "name: p\nworkdir: runs\nseed: 3\nnodes:\n  docs:\n    op: read\n    path: {}\n  bpe:\n    op: train_tokenizer\n    input: docs\n    vocab_size: 400\n  ids:\n    op: tokenize\n    input: docs\n    tokenizer: bpe\n  rows:\n    op: pack\n    input: ids\n    seq_len: 16\n    mode: bestfit\n    val_docs: 1\n    rows_per_file: 10\n  flat:\n    op: pack\n    input: ids\n    seq_len: 16\n    shuffle: false\n",
        sample.display()
    );
    let f = common::pipeline(d.path(), &yaml);
    let f = f.to_str().unwrap();
    common::kiln_in(d.path(), &["run", f, "--quiet"]).ok();
    let runs = d.path().join("runs");
    let ids = common::manifest(&runs, "ids");
    let vocab = ids["extra"]["vocab_size"].as_u64().unwrap() as u32;
    let input_tokens = ids["extra"]["tokens"].as_u64().unwrap();

    let m = common::manifest(&runs, "rows");
    assert_eq!(m["kind"], "packed");
    assert_eq!(m["stats"]["pack"]["tokens_in"], input_tokens);
    assert_eq!(m["stats"]["pack"]["docs"]["val"], 1);
    assert_eq!(m["extra"]["pad_id"], ids["extra"]["pad_id"]);
    let mut l = Loader::open(&runs.join("rows"), "train", 2, 0, 1, 0).unwrap();
    let b = l.next_batch();
    assert_eq!(b.tokens.len(), 2 * 17);
    assert!(b.tokens.iter().all(|&t| t < vocab));
    assert!(Loader::open(&runs.join("rows"), "val", 1, 0, 1, 0).is_ok());

    // Unshuffled concat: the rows are the tokenized documents, in order.
    let flat = common::manifest(&runs, "flat");
    let mut want: Vec<u32> = Vec::new();
    for f in ids["files"].as_array().unwrap() {
        for b in kiln::io::table::parquet_batches(&runs.join("ids").join(f["name"].as_str().unwrap())).unwrap() {
            let b = b.unwrap();
            let col = b.column_by_name("input_ids").unwrap();
            let l = arrow::array::AsArray::as_list::<i32>(col.as_ref());
            let v = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt32Type>(l.values().as_ref());
            want.extend(&v.values()[l.value_offsets()[0] as usize..*l.value_offsets().last().unwrap() as usize]);
        }
    }
    let (got, _, rows) = all_rows(&runs.join("flat"), "train");
    assert_eq!(rows as u64, flat["rows"].as_u64().unwrap());
    assert_eq!(got, want[..rows * 17]);
    assert_eq!(flat["stats"]["pack"]["dropped"], (want.len() % 17) as u64);

    // Cached on a second run; inspect shows a packed artifact.
    let again = common::kiln_in(d.path(), &["run", f, "--quiet", "--dry-run"]);
    assert!(
        !again.stdout.contains("rows") || again.stdout.contains("cached") || again.code == 0,
        "{again:?}"
    );
    let shown = common::kiln_in(d.path(), &["inspect", "runs/rows", "--rows", "2"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("kind packed"), "{}", shown.stdout);
}
