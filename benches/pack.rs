//! Packing and loading throughput on synthetic documents.
//!
//! `cargo bench --bench pack [-- TOKENS_MILLIONS]` (default 100M tokens).
//! Reports, for `concat` and `bestfit` at seq_len 1024: the packer alone
//! (rows built in memory, then discarded), and a whole `pack_docs` into
//! Arrow IPC files (split, shuffle, hashing, writing); then the loader's
//! batches per second at B = 64, T = 1024. Goal: ≥ 100M tokens/s for concat.
//!
//! `cargo bench --bench pack -- artifact [TOKENS_MILLIONS]` instead writes a
//! `tokens` artifact (Parquet) of that many tokens and times the whole
//! `pack` from it, Parquet decoding and spilling included, with the peak
//! resident memory (which counts the mapped token pages the OS may evict).

use kiln::pack::docs::DocStore;
use kiln::pack::loader::Loader;
use kiln::pack::shuffle::{SplitMix64, split_docs};
use kiln::pack::{Mode, NoProgress, PackConfig, TokenMeta, ValSplit, bestfit, concat, pack_docs, standalone};
use std::path::Path;
use std::time::Instant;

const SEQ_LEN: u32 = 1024;

/// Document lengths roughly like web text: exponential with mean 600, at
/// least 8, at most 16384 tokens.
fn lengths(total: u64) -> Vec<u32> {
    let mut r = SplitMix64::new(0, "bench", 0);
    let mut out = Vec::new();
    let mut sum = 0u64;
    while sum < total {
        let u = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let l = ((-(1.0 - u).ln() * 600.0) as u32).clamp(8, 16384);
        let l = l.min((total - sum) as u32).max(1);
        out.push(l);
        sum += l as u64;
    }
    out
}

fn rate(tokens: u64, secs: f64) -> String {
    format!("{:8.1}M tokens/s ({secs:.3}s)", tokens as f64 / secs / 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and then it should not spend a minute measuring.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pack benchmark: run it with `cargo bench --bench pack`");
        return;
    }
    let millions: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100);
    if std::env::args().any(|a| a == "artifact") {
        from_artifact(millions);
        return;
    }
    let total = millions * 1_000_000;
    let lens = lengths(total);
    let ids: Vec<u32> = (0..total).map(|i| (i % 50_000) as u32 + 10).collect();
    let docs = DocStore::from_vecs(ids, None, &lens).expect("lengths add up");
    println!(
        "{} documents, {}M tokens, seq_len {SEQ_LEN}, {} threads",
        lens.len(),
        millions,
        rayon::current_num_threads()
    );
    let row_len = SEQ_LEN as usize + 1;
    for shuffled in [false, true] {
        let (order, _) = split_docs(docs.count() as u64, ValSplit::None, 7, shuffled).expect("split");
        let label = if shuffled { "shuffled" } else { "in order" };
        let t = Instant::now();
        let mut rows = 0usize;
        let st = concat::concat(&docs, &order, row_len, &NoProgress, &mut |b| {
            rows += b.rows();
            Ok(())
        })
        .expect("concat");
        println!(
            "concat  packer, {label}: {}  ({} rows)",
            rate(total, t.elapsed().as_secs_f64()),
            st.rows
        );
        let t = Instant::now();
        let st = bestfit::bestfit(
            &docs,
            &order,
            row_len,
            false,
            0,
            bestfit::window_tokens(row_len),
            &NoProgress,
            &mut |b| {
                rows += b.rows();
                Ok(())
            },
        )
        .expect("bestfit");
        println!(
            "bestfit packer, {label}: {}  ({} rows, utilisation {:.4})",
            rate(total, t.elapsed().as_secs_f64()),
            st.rows,
            st.utilisation()
        );
    }
    let meta = TokenMeta {
        pad_id: Some(0),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in [Mode::Concat, Mode::Bestfit] {
        let cfg = PackConfig {
            seq_len: SEQ_LEN,
            mode,
            crop: false,
            val: ValSplit::Fraction(0.01),
            shuffle: true,
            rows_per_file: 8192,
            seed: 1,
        };
        let out = dir.path().join(format!("{mode:?}"));
        let t = Instant::now();
        let o = pack_docs(&docs, &out, &cfg, &meta, &NoProgress).expect("pack");
        let secs = t.elapsed().as_secs_f64();
        let m = standalone::manifest(&o, &cfg, &meta, None, secs);
        std::fs::write(out.join("manifest.json"), serde_json::to_string(&m).expect("json")).expect("write manifest");
        println!("{mode:?} pack_docs to IPC (shuffle, 1% val, hashed): {}", rate(total, secs));
    }
    // The loader from a warm page cache (the files were just written), then
    // cold: the files' pages evicted with posix_fadvise(DONTNEED), which needs
    // no root, and a fresh loader (mapped pages are not evicted).
    let packed = dir.path().join("Concat");
    for cache in ["warm", "cold"] {
        if cache == "cold" {
            evict(&packed.join("train"));
        }
        let mut l = Loader::open(&packed, "train", 64, 0, 1, 3).expect("open");
        let mut b = Default::default();
        let steps = l.steps_per_epoch().min(2000);
        let t = Instant::now();
        for _ in 0..steps {
            l.next_into(&mut b);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "loader B=64 T=1024, {cache} page cache: {:.0} batches/s, {:.0}M tokens/s ({steps} batches, zero-copy: {})",
            steps as f64 / secs,
            steps as f64 * 64.0 * 1025.0 / secs / 1e6,
            l.is_zero_copy()
        );
    }
}

/// Drops the page-cache pages of every file in `dir`.
fn evict(dir: &std::path::Path) {
    use std::os::fd::AsRawFd;
    for e in std::fs::read_dir(dir).expect("packed dir").flatten() {
        let f = std::fs::File::open(e.path()).expect("open");
        let _ = f.sync_all();
        // SAFETY: a valid open descriptor; fadvise only drops clean cached pages.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise");
    }
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    kiln::exec::store::peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64
}

/// Writes a `tokens` artifact of `millions` M tokens into `dir`, batch by
/// batch (never all in memory).
fn write_tokens(dir: &Path, millions: u64) {
    use arrow::array::{ArrayRef, ListArray, UInt32Array};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;
    let lens = lengths(millions * 1_000_000);
    let mut w = kiln::io::writer::PartWriter::new(dir, "data", 256 << 20);
    let mut next = 0u32;
    for chunk in lens.chunks(8192) {
        let n: usize = chunk.iter().map(|&l| l as usize).sum();
        let ids: Vec<u32> = (0..n)
            .map(|_| {
                next = next.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (next >> 8) % 50_000 + 10
            })
            .collect();
        let field = Arc::new(Field::new_list_field(DataType::UInt32, false));
        let offsets = OffsetBuffer::from_lengths(chunk.iter().map(|&l| l as usize));
        let list: ArrayRef = Arc::new(ListArray::new(field, offsets, Arc::new(UInt32Array::from(ids)), None));
        let batch = arrow::record_batch::RecordBatch::try_from_iter([("input_ids", list)]).expect("batch");
        w.write(&batch).expect("write");
    }
    let files = w.finish().expect("finish");
    let m = serde_json::json!({
        "format_version": kiln::exec::store::FORMAT_VERSION, "kind": "tokens", "node": "tokens", "op": "tokenize",
        "fingerprint": "bench", "params": {}, "inputs": {}, "seed": null, "sources": null, "schema": [],
        "rows": lens.len(), "rejected_rows": 0, "bytes": 0, "files": files, "rejected_files": [],
        "content_hash": null, "rows_hash": {"lanes": [0, 0], "rows": 0}, "wall_time_s": 0.0, "peak_rss_bytes": null,
        "stats": {}, "extra": {"vocab_size": 50_010, "pad_id": 0, "eos_id": 1}, "shard": null, "parts": 1,
        "completed_unix": 0, "kiln_version": "bench",
    });
    std::fs::write(dir.join("manifest.json"), m.to_string()).expect("manifest");
}

/// The whole `pack` from a Parquet `tokens` artifact.
fn from_artifact(millions: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("tokens");
    let t = Instant::now();
    write_tokens(&input, millions);
    println!(
        "wrote a {millions}M-token tokens artifact in {:.1}s (peak RSS {:.0} MiB)",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    for mode in [Mode::Concat, Mode::Bestfit] {
        let cfg = PackConfig {
            seq_len: SEQ_LEN,
            mode,
            crop: false,
            val: ValSplit::Fraction(0.01),
            shuffle: true,
            rows_per_file: 8192,
            seed: 1,
        };
        let out = dir.path().join(format!("{mode:?}"));
        let t = Instant::now();
        let m = standalone::pack_dir(&input, &out, &cfg, &NoProgress).expect("pack");
        println!(
            "{mode:?} pack from Parquet (decode, spill, shuffle, 1% val, write): {}  peak RSS {:.0} MiB, {} rows",
            rate(millions * 1_000_000, t.elapsed().as_secs_f64()),
            peak_rss_mib(),
            m.rows
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}
