//! Hugging Face GPT-2 checkpoints: `model.safetensors` with GPT-2 tensor
//! names and `config.json` with `GPT2Config` fields, so
//! `transformers.GPT2LMHeadModel.from_pretrained(dir)` opens what kiln
//! trains, and kiln fine-tunes what users already have.
//!
//! Names and layouts follow `transformers`' `GPT2LMHeadModel`
//! (`modeling_gpt2.py`): `transformer.`-prefixed names, `Conv1D` weights
//! stored `[in, out]`, the LM head tied to `wte` and therefore not stored.
//! The padded vocabulary rows are kiln's own and never leave it.

use super::head::Scorer;
use super::params::TensorInfo;
use super::{Gpt, GptConfig, ModelError};
use crate::backend::Precision;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Value, json};
use std::path::Path;

/// The weights file of a model directory.
pub const WEIGHTS: &str = "model.safetensors";
/// The config file of a model directory.
pub const CONFIG: &str = "config.json";

fn io_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Io(format!("{}: {e}", path.display()))
}

/// The `config.json` of `cfg` (GPT2Config's fields; `gelu_new` is GPT-2's
/// tanh-approximated GELU, `layer_norm_epsilon` the 1e-5 kiln's LayerNorm uses).
pub fn config_json(cfg: &GptConfig, bos: Option<u32>, eos: Option<u32>) -> Value {
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": null,
        "activation_function": "gelu_new",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "tie_word_embeddings": true,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    })
}

/// Reads a `GPT2Config` back; anything kiln's GPT-2 cannot reproduce
/// (another activation, LayerNorm epsilon, untied head, ...) is an error.
pub fn config_from_json(v: &Value, path: &Path) -> Result<GptConfig, ModelError> {
    let bad = |m: String| io_err(path, m);
    let num = |k: &str| -> Result<usize, ModelError> {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| bad(format!("field `{k}` is missing or not a positive integer")))
    };
    if let Some(t) = v.get("model_type").and_then(Value::as_str)
        && t != "gpt2"
    {
        return Err(bad(format!("model_type `{t}` is not gpt2; kiln reads GPT-2 checkpoints")));
    }
    if let Some(a) = v.get("activation_function").and_then(Value::as_str)
        && !matches!(a, "gelu_new" | "gelu_pytorch_tanh")
    {
        return Err(bad(format!(
            "activation_function `{a}`: kiln's GPT-2 uses the tanh GELU (gelu_new)"
        )));
    }
    if let Some(e) = v.get("layer_norm_epsilon").and_then(Value::as_f64)
        && (e - 1e-5).abs() > 1e-12
    {
        return Err(bad(format!("layer_norm_epsilon {e}: kiln's LayerNorm uses 1e-5")));
    }
    if v.get("tie_word_embeddings").and_then(Value::as_bool) == Some(false) {
        return Err(bad("tie_word_embeddings is false: kiln's LM head is tied to wte".into()));
    }
    if let Some(n) = v.get("n_inner").and_then(Value::as_u64)
        && n as usize != 4 * num("n_embd")?
    {
        return Err(bad(format!("n_inner {n}: kiln's MLP is 4 × n_embd")));
    }
    let cfg = GptConfig {
        n_layer: num("n_layer")?,
        n_head: num("n_head")?,
        n_embd: num("n_embd")?,
        block_size: num("n_positions")?,
        vocab_size: num("vocab_size")?,
        dropout: 0.0,
    };
    let problems = cfg.check();
    if !problems.is_empty() {
        return Err(ModelError::Config(problems));
    }
    Ok(cfg)
}

/// The HF shape of a kiln tensor (Conv1D weights transposed, `wte`
/// without the padded rows).
fn hf_shape(t: &TensorInfo, cfg: &GptConfig) -> Vec<usize> {
    if t.name == "wte.weight" {
        return vec![cfg.vocab_size, cfg.n_embd];
    }
    if t.hf_transposed {
        return vec![t.shape[1], t.shape[0]];
    }
    t.shape.clone()
}

/// The values of tensor `t` in HF order.
fn to_hf(params: &[f32], t: &TensorInfo, cfg: &GptConfig) -> Vec<f32> {
    let src = &params[t.range()];
    if t.name == "wte.weight" {
        return src[..cfg.vocab_size * cfg.n_embd].to_vec();
    }
    if !t.hf_transposed {
        return src.to_vec();
    }
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut out = vec![0.0f32; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// A model's tensors under their HF names and shapes, as f32 bytes.
fn hf_tensors(model: &Gpt) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let cfg = model.config();
    model
        .layout()
        .tensors()
        .map(|t| {
            let vals = to_hf(&model.params, &t, cfg);
            (
                format!("transformer.{}", t.name),
                hf_shape(&t, cfg),
                bytemuck::cast_slice(&vals).to_vec(),
            )
        })
        .collect()
}

/// Writes `tensors` as `model.safetensors` and `config` as `config.json`.
fn write_dir(dir: &Path, tensors: &[(String, Vec<usize>, Vec<u8>)], config: &Value) -> Result<(), ModelError> {
    let views = tensors
        .iter()
        .map(|(n, shape, bytes)| TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Io(format!("building safetensors: {e}")))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(WEIGHTS);
    safetensors::tensor::serialize_to_file(views, Some(meta), &weights).map_err(|e| io_err(&weights, e))?;
    let path = dir.join(CONFIG);
    let text = serde_json::to_string_pretty(config).map_err(|e| io_err(&path, e))?;
    std::fs::write(&path, text).map_err(|e| io_err(&path, e))
}

/// Writes `model.safetensors` and `config.json` into `dir` (fp32).
pub fn save(model: &Gpt, dir: &Path, bos: Option<u32>, eos: Option<u32>) -> Result<(), ModelError> {
    write_dir(dir, &hf_tensors(model), &config_json(model.config(), bos, eos))
}

/// The `config.json` key of the score offset kiln subtracts (see [`save_scorer`]).
pub const SCORE_OFFSET: &str = "kiln_score_offset";

/// Writes a reward model as `GPT2ForSequenceClassification` with one label:
/// the trunk's `transformer.*` tensors, `score.weight` `[1, C]`, and a
/// config with `num_labels: 1` and `pad_token_id` (transformers scores the
/// last token that is not `pad`, which is where kiln reads it, as long as
/// sequences are right-padded and `pad` is not the end token). `offset`,
/// when given, is stored as `kiln_score_offset` and subtracted by
/// [`load_scorer`]'s users; transformers ignores it, so its raw score is
/// kiln's plus the offset.
pub fn save_scorer(
    scorer: &Scorer,
    dir: &Path,
    specials: (Option<u32>, Option<u32>, Option<u32>),
    offset: Option<f64>,
) -> Result<(), ModelError> {
    let (bos, eos, pad) = specials;
    let mut tensors = hf_tensors(&scorer.gpt);
    tensors.push((
        "score.weight".into(),
        vec![1, scorer.w.len()],
        bytemuck::cast_slice(&scorer.w).to_vec(),
    ));
    let mut config = config_json(scorer.gpt.config(), bos, eos);
    config["architectures"] = json!(["GPT2ForSequenceClassification"]);
    config["num_labels"] = json!(1);
    config["id2label"] = json!({"0": "LABEL_0"});
    config["label2id"] = json!({"LABEL_0": 0});
    config["pad_token_id"] = json!(pad);
    if let Some(o) = offset {
        config[SCORE_OFFSET] = json!(o);
    }
    write_dir(dir, &tensors, &config)
}

/// Reads a `GPT2ForSequenceClassification` directory (kiln's export or
/// transformers'), with its `kiln_score_offset` (0 when absent).
pub fn load_scorer(dir: &Path, precision: Precision) -> Result<(Scorer, f64), ModelError> {
    let gpt = load(dir, precision)?;
    let c = gpt.config().n_embd;
    let config = dir.join(CONFIG);
    let text = std::fs::read_to_string(&config).map_err(|e| io_err(&config, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| io_err(&config, e))?;
    if let Some(n) = v
        .get("num_labels")
        .and_then(Value::as_u64)
        .or_else(|| v.get("id2label").and_then(Value::as_object).map(|m| m.len() as u64))
        && n != 1
    {
        return Err(io_err(
            &config,
            format!("num_labels is {n}; a reward model has one score (num_labels: 1)"),
        ));
    }
    let weights = dir.join(WEIGHTS);
    let bytes = std::fs::read(&weights).map_err(|e| io_err(&weights, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| io_err(&weights, e))?;
    let view = st.tensor("score.weight").map_err(|_| {
        io_err(
            &weights,
            "tensor `score.weight` is missing: this is not a GPT2ForSequenceClassification (reward model) checkpoint",
        )
    })?;
    if view.shape() != [1, c] {
        return Err(io_err(
            &weights,
            format!("`score.weight` has shape {:?}, expected [1, {c}]", view.shape()),
        ));
    }
    let w = to_f32(&view).map_err(|m| io_err(&weights, format!("tensor `score.weight`: {m}")))?;
    let offset = v.get(SCORE_OFFSET).and_then(Value::as_f64).unwrap_or(0.0);
    Ok((Scorer::with_weights(gpt, w), offset))
}

/// Reads an HF GPT-2 directory (`config.json` + `model.safetensors`; names
/// with or without the `transformer.` prefix; f32, f16 or bf16 values).
pub fn load(dir: &Path, precision: Precision) -> Result<Gpt, ModelError> {
    let config = dir.join(CONFIG);
    let text = std::fs::read_to_string(&config).map_err(|e| io_err(&config, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| io_err(&config, e))?;
    let cfg = config_from_json(&v, &config)?;
    let weights = dir.join(WEIGHTS);
    let file = std::fs::File::open(&weights).map_err(|e| io_err(&weights, e))?;
    // SAFETY: the map is read-only and dropped before returning; a file
    // truncated underneath us is the same hazard as any mmap reader's.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(&weights, e))?;
    let st = SafeTensors::deserialize(&map).map_err(|e| io_err(&weights, e))?;
    let mut model = Gpt::new(cfg.clone(), precision, 0)?;
    let infos: Vec<TensorInfo> = model.layout().tensors().collect();
    for t in &infos {
        let view = st
            .tensor(&format!("transformer.{}", t.name))
            .or_else(|_| st.tensor(&t.name))
            .map_err(|_| io_err(&weights, format!("tensor `transformer.{}` is missing", t.name)))?;
        let want = hf_shape(t, &cfg);
        if view.shape() != want.as_slice() {
            return Err(io_err(
                &weights,
                format!("tensor `{}` has shape {:?}, config.json implies {want:?}", t.name, view.shape()),
            ));
        }
        let vals = to_f32(&view).map_err(|m| io_err(&weights, format!("tensor `{}`: {m}", t.name)))?;
        let dst = &mut model.params[t.range()];
        if t.name == "wte.weight" {
            dst[..vals.len()].copy_from_slice(&vals);
            dst[vals.len()..].fill(0.0);
        } else if t.hf_transposed {
            let (rows, cols) = (t.shape[0], t.shape[1]);
            for r in 0..rows {
                for c in 0..cols {
                    dst[r * cols + c] = vals[c * rows + r];
                }
            }
        } else {
            dst.copy_from_slice(&vals);
        }
    }
    Ok(model)
}

fn to_f32(v: &TensorView<'_>) -> Result<Vec<f32>, String> {
    let d = v.data();
    Ok(match v.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => d.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(format!("dtype {other:?} is not a float kiln reads (f32, f16, bf16)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::tiny_config as tiny;

    #[test]
    fn save_then_load_gives_the_same_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Gpt::new(tiny(), Precision::F32, 7).unwrap();
        save(&a, dir.path(), Some(1), Some(2)).unwrap();
        let mut b = load(dir.path(), Precision::F32).unwrap();
        assert_eq!(a.params, b.params);
        let ids: Vec<u32> = (0..16).map(|i| (i * 7 % 70) as u32).collect();
        let la = a.forward(&ids, Some(&ids), None, 2, 8).unwrap();
        let lb = b.forward(&ids, Some(&ids), None, 2, 8).unwrap();
        assert_eq!(la, lb);
        let cfg: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG)).unwrap()).unwrap();
        assert_eq!(cfg["vocab_size"], 70);
        assert_eq!(cfg["n_positions"], 8);
        // HF names and Conv1D layout.
        let bytes = std::fs::read(dir.path().join(WEIGHTS)).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("transformer.h.1.attn.c_attn.weight").unwrap().shape(), [16, 48]);
        assert_eq!(st.tensor("transformer.wte.weight").unwrap().shape(), [70, 16]);
        assert!(st.tensor("lm_head.weight").is_err());
    }

    #[test]
    fn a_scorer_saves_as_sequence_classification_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Scorer::new(Gpt::new(tiny(), Precision::F32, 3).unwrap(), 4);
        save_scorer(&a, dir.path(), (Some(1), Some(2), Some(0)), Some(0.25)).unwrap();
        let cfg: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG)).unwrap()).unwrap();
        assert_eq!(cfg["architectures"][0], "GPT2ForSequenceClassification");
        assert_eq!((cfg["num_labels"].as_u64(), cfg["pad_token_id"].as_u64()), (Some(1), Some(0)));
        let bytes = std::fs::read(dir.path().join(WEIGHTS)).unwrap();
        assert_eq!(
            SafeTensors::deserialize(&bytes).unwrap().tensor("score.weight").unwrap().shape(),
            [1, 16]
        );
        let (mut b, offset) = load_scorer(dir.path(), Precision::F32).unwrap();
        assert_eq!((b.w.clone(), offset), (a.w.clone(), 0.25));
        let ids: Vec<u32> = (0..8).map(|i| (i * 5 % 70) as u32).collect();
        a.forward(&ids, 1, 8).unwrap();
        b.forward(&ids, 1, 8).unwrap();
        assert_eq!(a.scores(), b.scores());
        // An LM checkpoint is not a reward model.
        save(&a.gpt, dir.path(), None, None).unwrap();
        let e = load_scorer(dir.path(), Precision::F32).unwrap_err().to_string();
        assert!(e.contains("score.weight"), "{e}");
    }

    #[test]
    fn bad_checkpoints_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = Gpt::new(tiny(), Precision::F32, 7).unwrap();
        save(&a, dir.path(), None, None).unwrap();
        // A config that disagrees with the weights.
        let mut cfg = config_json(&tiny(), None, None);
        cfg["n_embd"] = json!(32);
        std::fs::write(dir.path().join(CONFIG), cfg.to_string()).unwrap();
        let e = load(dir.path(), Precision::F32).unwrap_err().to_string();
        assert!(e.contains("model.safetensors") && e.contains("shape"), "{e}");
        cfg["n_embd"] = json!(16);
        cfg["activation_function"] = json!("relu");
        std::fs::write(dir.path().join(CONFIG), cfg.to_string()).unwrap();
        let e = load(dir.path(), Precision::F32).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("relu"), "{e}");
        std::fs::write(dir.path().join(WEIGHTS), b"not safetensors").unwrap();
        std::fs::write(dir.path().join(CONFIG), config_json(&tiny(), None, None).to_string()).unwrap();
        let e = load(dir.path(), Precision::F32).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
