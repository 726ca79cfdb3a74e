//! Helper for `benches/hf_parity.py`: writes random kiln models as HF
//! checkpoints and dumps kiln's logits for token ids the script chooses, so
//! the script can compare them with `transformers`' on the same checkpoint.
//!
//! ```text
//! hf_parity save DIR N_LAYER N_HEAD N_EMBD BLOCK_SIZE VOCAB SEED
//! hf_parity logits DIR IDS.json OUT_PREFIX
//! ```
//! `IDS.json` is `{"b": B, "t": T, "ids": [B·T ids]}`. `logits` writes
//! `OUT_PREFIX.full.f32` (a full forward, `[B, T, V]` little-endian f32) and
//! `OUT_PREFIX.kv.f32` (the KV-cached decoder fed one token at a time, same
//! shape), both in f32 weights.

use kiln::backend::Precision;
use kiln::infer::Decoder;
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig, hf};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("save") if args.len() == 8 => save(&args[1..]),
        Some("logits") if args.len() == 4 => logits(&args[1..]),
        _ => Err("usage: hf_parity save DIR N_LAYER N_HEAD N_EMBD BLOCK_SIZE VOCAB SEED | hf_parity logits DIR IDS.json OUT_PREFIX".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn num(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("`{s}` is not a number"))
}

fn save(a: &[String]) -> Result<(), String> {
    let cfg = GptConfig {
        n_layer: num(&a[1])?,
        n_head: num(&a[2])?,
        n_embd: num(&a[3])?,
        block_size: num(&a[4])?,
        vocab_size: num(&a[5])?,
        dropout: 0.0,
    };
    let seed = num(&a[6])? as u64;
    let mut m = Gpt::new(cfg, Precision::F32, seed).map_err(|e| e.to_string())?;
    // GPT-2's init has zero biases and unit LayerNorm gains; perturb every
    // parameter so the comparison exercises all of them.
    let mut r = Rng::new(seed ^ 0xA5A5);
    m.params.iter_mut().for_each(|p| *p += (r.normal() * 0.05) as f32);
    let dir = Path::new(&a[0]);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    hf::save(&m, dir, None, None).map_err(|e| e.to_string())
}

fn logits(a: &[String]) -> Result<(), String> {
    let mut m = hf::load(Path::new(&a[0]), Precision::F32).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&a[1]).map_err(|e| format!("{}: {e}", a[1]))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", a[1]))?;
    let (b, t) = (
        v["b"].as_u64().ok_or("ids.json: no `b`")? as usize,
        v["t"].as_u64().ok_or("ids.json: no `t`")? as usize,
    );
    let ids: Vec<u32> = v["ids"]
        .as_array()
        .ok_or("ids.json: no `ids`")?
        .iter()
        .map(|x| x.as_u64().map(|x| x as u32).ok_or("ids.json: an id is not a number"))
        .collect::<Result<_, _>>()?;
    let (vocab, vp) = (m.config().vocab_size, m.config().padded_vocab());
    m.forward(&ids, None, None, b, t).map_err(|e| e.to_string())?;
    let full: Vec<f32> = m.logits().chunks(vp).flat_map(|r| r[..vocab].to_vec()).collect();
    let mut kv = Vec::with_capacity(full.len());
    let mut dec = Decoder::new(&m, 1, t, Precision::F32).map_err(|e| e.to_string())?;
    for seq in ids.chunks(t) {
        dec.reset();
        for &id in seq {
            dec.step(&[&[id]]).map_err(|e| e.to_string())?;
            kv.extend_from_slice(dec.logits(0).ok_or("decoder gave no logits")?);
        }
    }
    for (name, data) in [("full", &full), ("kv", &kv)] {
        let path = format!("{}.{name}.f32", a[2]);
        std::fs::write(&path, bytemuck::cast_slice::<f32, u8>(data)).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
