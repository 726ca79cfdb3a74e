//! Resumable training checkpoints: the flat parameter and AdamW moment
//! buffers as raw little-endian f32, plus `state.json` (step, loader
//! position, tokens seen). A checkpoint is written to `step-N.tmp/` and
//! renamed to `step-N/` only when complete, so a kill at any moment leaves
//! either the previous checkpoint or the new one, never half of one; the
//! raw buffers make a resumed run bit-identical to an uninterrupted one.

use crate::pack::loader::Position;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a checkpoint records besides the buffers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// AdamW's own step counter.
    pub adam_step: u64,
    /// Where the training loader continues.
    pub loader: Position,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Loss of the last step.
    pub loss: f32,
}

/// The buffers of a checkpoint.
pub struct Buffers<'a> {
    /// Parameters.
    pub params: &'a [f32],
    /// AdamW first moments.
    pub m: &'a [f32],
    /// AdamW second moments.
    pub v: &'a [f32],
}

fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

fn write_f32(path: &Path, x: &[f32]) -> Result<(), String> {
    crate::exec::store::write_synced(path, bytemuck::cast_slice(x))
}

fn read_f32(path: &Path, into: &mut [f32]) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() != into.len() * 4 {
        return Err(format!("{}: {} bytes, expected {}", path.display(), bytes.len(), into.len() * 4));
    }
    for (d, b) in into.iter_mut().zip(bytes.chunks_exact(4)) {
        *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// Writes checkpoint `state.step` under `root` atomically and removes older ones.
pub fn save(root: &Path, state: &TrainState, bufs: &Buffers) -> Result<PathBuf, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let dest = step_dir(root, state.step);
    let tmp = dest.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    write_f32(&tmp.join("params.bin"), bufs.params)?;
    write_f32(&tmp.join("adam_m.bin"), bufs.m)?;
    write_f32(&tmp.join("adam_v.bin"), bufs.v)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    crate::exec::store::write_synced(&tmp.join("state.json"), &json)?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for old in list(root) {
        if old.0 < state.step {
            let _ = std::fs::remove_dir_all(&old.1);
        }
    }
    Ok(dest)
}

/// Complete checkpoints under `root`, oldest first.
fn list(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
            e.path().join("state.json").is_file().then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Loads the newest complete checkpoint under `root` into the buffers.
pub fn load_latest(root: &Path, params: &mut [f32], m: &mut [f32], v: &mut [f32]) -> Result<Option<TrainState>, String> {
    let Some((_, dir)) = list(root).pop() else { return Ok(None) };
    let text = std::fs::read_to_string(dir.join("state.json")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| format!("{}/state.json: {e}", dir.display()))?;
    read_f32(&dir.join("params.bin"), params)?;
    read_f32(&dir.join("adam_m.bin"), m)?;
    read_f32(&dir.join("adam_v.bin"), v)?;
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_complete_checkpoint_wins() {
        let d = tempfile::tempdir().unwrap();
        let p = [1.0f32, 2.0];
        let z = [0.0f32; 2];
        for step in [5, 10] {
            let s = TrainState {
                step,
                ..Default::default()
            };
            save(d.path(), &s, &Buffers { params: &p, m: &z, v: &z }).unwrap();
        }
        // A half-written newer one is ignored.
        std::fs::create_dir_all(d.path().join("step-00000015.tmp")).unwrap();
        let (mut a, mut b, mut c) = ([0.0; 2], [9.0; 2], [9.0; 2]);
        let s = load_latest(d.path(), &mut a, &mut b, &mut c).unwrap().unwrap();
        assert_eq!(s.step, 10);
        assert_eq!(a, p);
        assert_eq!(b, z);
        assert!(!d.path().join("step-00000005").exists(), "older checkpoints are removed");
        let mut wrong = [0.0f32; 3];
        assert!(load_latest(d.path(), &mut wrong, &mut b, &mut c).is_err());
    }
}
