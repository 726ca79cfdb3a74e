//! Packing outside a pipeline: a `tokens` artifact directory in, a `packed`
//! artifact directory (with its `manifest.json`) out, for scripts and tests
//! that have token ids but no pipeline.

use super::{PackConfig, PackError, PackOutput, Progress, TokenMeta, TokensInput};
use crate::exec::store::{self, FORMAT_VERSION, InputInfo, Manifest};
use crate::spec::Kind;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The manifest of a `packed` artifact made outside a pipeline. Its
/// fingerprint hashes the configuration, the input's fingerprint and the
/// rows, so two different packings never share one.
pub fn manifest(o: &PackOutput, cfg: &PackConfig, meta: &TokenMeta, input: Option<InputInfo>, secs: f64) -> Manifest {
    let params = json!({
        "seq_len": cfg.seq_len,
        "mode": cfg.mode,
        "crop": cfg.crop,
        "val": format!("{:?}", cfg.val),
        "shuffle": cfg.shuffle,
        "rows_per_file": cfg.rows_per_file,
    });
    let mut h = blake3::Hasher::new();
    h.update(params.to_string().as_bytes());
    h.update(&cfg.seed.to_le_bytes());
    h.update(input.as_ref().map_or("", |i| i.fingerprint.as_str()).as_bytes());
    h.update(o.rows_hash.hex().as_bytes());
    let mut inputs = BTreeMap::new();
    if let Some(i) = input {
        inputs.insert("input".to_string(), i);
    }
    Manifest {
        format_version: FORMAT_VERSION,
        kind: Kind::Packed,
        node: "pack".into(),
        op: "pack".into(),
        fingerprint: h.finalize().to_hex()[..16].to_string(),
        params,
        inputs,
        seed: Some(cfg.seed),
        sources: serde_json::Value::Null,
        schema: crate::exec::store::columns_of(&o.schema),
        rows: o.rows,
        rejected_rows: 0,
        bytes: o.files.iter().map(|f| f.bytes).sum(),
        files: o.files.clone(),
        rejected_files: vec![],
        content_hash: Some(o.rows_hash.hex()),
        rows_hash: o.rows_hash,
        wall_time_s: secs,
        peak_rss_bytes: store::peak_rss_bytes(),
        stats: json!({ "pack": o.stats() }),
        extra: o.extra(cfg, meta),
        shard: None,
        parts: 1,
        completed_unix: store::unix_now(),
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Packs the `tokens` artifact in `input_dir` into a new `packed` artifact
/// at `out_dir`, written aside and renamed into place when complete.
pub fn pack_dir(input_dir: &Path, out_dir: &Path, cfg: &PackConfig, progress: &dyn Progress) -> Result<Manifest, PackError> {
    let start = Instant::now();
    let a =
        store::load(input_dir).ok_or_else(|| format!("{} is not a finished artifact (no readable manifest.json)", input_dir.display()))?;
    let input = TokensInput::from_artifact(&a)?;
    let parent = out_dir.parent().unwrap_or(Path::new("."));
    let tmp = store::scratch_dir(parent, "pack")?;
    let result = super::pack(&input, &tmp, cfg, progress).and_then(|o| {
        let info = InputInfo {
            node: a.manifest.node.clone(),
            fingerprint: a.manifest.fingerprint.clone(),
        };
        let m = manifest(&o, cfg, &input.meta, Some(info), start.elapsed().as_secs_f64());
        store::commit(&tmp, out_dir, &m)?;
        Ok(m)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    // The scratch folder's parent (`.tmp`) is left empty; remove it if so.
    let _ = std::fs::remove_dir(parent.join(".tmp"));
    result
}
