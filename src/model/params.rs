//! The parameter layout: every tensor of GPT-2 at an offset in one flat
//! `Vec<f32>` (and the same offsets in the gradient and AdamW moment buffers).
//!
//! Tensors of one kind are stacked over layers, as in llm.c, so a kind's
//! slice is `[n_layer, ...]` and layer `l` is a contiguous sub-slice.
//!
//! **Matrix layout.** Linear weights are stored PyTorch-`Linear` style,
//! `[out, in]` (so the tied LM head is `wte` itself, `[Vp, C]`). HF GPT-2
//! stores `c_attn`, `c_proj` and `c_fc` as `Conv1D` weights `[in, out]`;
//! [`TensorInfo::hf_transposed`] marks the tensors an HF export/import must
//! transpose.

use super::GptConfig;
use std::ops::Range;

/// The kinds of parameter tensor, in buffer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Token embedding `[Vp, C]`, tied to the LM head.
    Wte,
    /// Position embedding `[block_size, C]`.
    Wpe,
    /// `ln_1` weight `[L, C]`.
    Ln1W,
    /// `ln_1` bias `[L, C]`.
    Ln1B,
    /// `attn.c_attn` weight `[L, 3C, C]`.
    QkvW,
    /// `attn.c_attn` bias `[L, 3C]`.
    QkvB,
    /// `attn.c_proj` weight `[L, C, C]`.
    AttProjW,
    /// `attn.c_proj` bias `[L, C]`.
    AttProjB,
    /// `ln_2` weight `[L, C]`.
    Ln2W,
    /// `ln_2` bias `[L, C]`.
    Ln2B,
    /// `mlp.c_fc` weight `[L, 4C, C]`.
    FcW,
    /// `mlp.c_fc` bias `[L, 4C]`.
    FcB,
    /// `mlp.c_proj` weight `[L, C, 4C]`.
    FcProjW,
    /// `mlp.c_proj` bias `[L, C]`.
    FcProjB,
    /// `ln_f` weight `[C]`.
    LnfW,
    /// `ln_f` bias `[C]`.
    LnfB,
}

/// All kinds in buffer order.
pub const KINDS: [Kind; 16] = [
    Kind::Wte,
    Kind::Wpe,
    Kind::Ln1W,
    Kind::Ln1B,
    Kind::QkvW,
    Kind::QkvB,
    Kind::AttProjW,
    Kind::AttProjB,
    Kind::Ln2W,
    Kind::Ln2B,
    Kind::FcW,
    Kind::FcB,
    Kind::FcProjW,
    Kind::FcProjB,
    Kind::LnfW,
    Kind::LnfB,
];

/// How a tensor is initialised (GPT-2 / nanoGPT conventions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal(0, std).
    Normal(f32),
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// One named tensor of the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// GPT-2 name as in the HF `gpt2` safetensors file (`h.3.attn.c_attn.weight`).
    pub name: String,
    /// Shape in kiln's layout (`[out, in]` for matrices).
    pub shape: Vec<usize>,
    /// Offset into the flat buffer.
    pub offset: usize,
    /// True for 2-D tensors (embeddings and weight matrices): these get weight
    /// decay, biases and LayerNorm parameters do not (nanoGPT's rule).
    pub matrix: bool,
    /// True when HF stores this tensor transposed (`Conv1D`, `[in, out]`).
    pub hf_transposed: bool,
    /// Initialisation rule.
    pub init: Init,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for an empty tensor (never the case for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensor's range in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Offsets of every parameter tensor for one config.
#[derive(Debug, Clone)]
pub struct ParamLayout {
    n_layer: usize,
    c: usize,
    vp: usize,
    block_size: usize,
    offsets: [usize; 16],
    sizes: [usize; 16],
    total: usize,
}

impl ParamLayout {
    /// The layout for `cfg` (assumed valid: see [`GptConfig::check`]).
    pub fn new(cfg: &GptConfig) -> Self {
        let (l, c, vp) = (cfg.n_layer, cfg.n_embd, cfg.padded_vocab());
        let sizes = KINDS.map(|k| match k {
            Kind::Wte => vp * c,
            Kind::Wpe => cfg.block_size * c,
            Kind::Ln1W | Kind::Ln1B | Kind::Ln2W | Kind::Ln2B | Kind::AttProjB | Kind::FcProjB => l * c,
            Kind::QkvW => l * 3 * c * c,
            Kind::QkvB => l * 3 * c,
            Kind::AttProjW => l * c * c,
            Kind::FcW | Kind::FcProjW => l * 4 * c * c,
            Kind::FcB => l * 4 * c,
            Kind::LnfW | Kind::LnfB => c,
        });
        let mut offsets = [0; 16];
        let mut total = 0;
        for (o, s) in offsets.iter_mut().zip(sizes) {
            *o = total;
            total += s;
        }
        ParamLayout {
            n_layer: l,
            c,
            vp,
            block_size: cfg.block_size,
            offsets,
            sizes,
            total,
        }
    }

    /// Total number of f32 parameters (padded vocabulary rows included).
    pub fn total(&self) -> usize {
        self.total
    }

    /// The whole (layer-stacked) range of a kind.
    pub fn range(&self, kind: Kind) -> Range<usize> {
        let i = kind as usize;
        self.offsets[i]..self.offsets[i] + self.sizes[i]
    }

    /// Layer `l`'s range of a per-layer kind (the whole range for the rest).
    pub fn layer(&self, kind: Kind, l: usize) -> Range<usize> {
        let r = self.range(kind);
        match kind {
            Kind::Wte | Kind::Wpe | Kind::LnfW | Kind::LnfB => r,
            _ => {
                let per = r.len() / self.n_layer;
                r.start + l * per..r.start + (l + 1) * per
            }
        }
    }

    /// Every tensor with its GPT-2 name, kiln shape, offset, decay flag and init.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo> + '_ {
        let (c, l) = (self.c, self.n_layer);
        // GPT-2 scales the init of projections into the residual stream by
        // 1/√(2·n_layer) (Radford et al. 2019, §2.3; nanoGPT's `c_proj` init).
        let proj_std = 0.02 / ((2 * l) as f32).sqrt();
        let layer_parts: [(Kind, &str, Vec<usize>, Init); 12] = [
            (Kind::Ln1W, "ln_1.weight", vec![c], Init::Ones),
            (Kind::Ln1B, "ln_1.bias", vec![c], Init::Zeros),
            (Kind::QkvW, "attn.c_attn.weight", vec![3 * c, c], Init::Normal(0.02)),
            (Kind::QkvB, "attn.c_attn.bias", vec![3 * c], Init::Zeros),
            (Kind::AttProjW, "attn.c_proj.weight", vec![c, c], Init::Normal(proj_std)),
            (Kind::AttProjB, "attn.c_proj.bias", vec![c], Init::Zeros),
            (Kind::Ln2W, "ln_2.weight", vec![c], Init::Ones),
            (Kind::Ln2B, "ln_2.bias", vec![c], Init::Zeros),
            (Kind::FcW, "mlp.c_fc.weight", vec![4 * c, c], Init::Normal(0.02)),
            (Kind::FcB, "mlp.c_fc.bias", vec![4 * c], Init::Zeros),
            (Kind::FcProjW, "mlp.c_proj.weight", vec![c, 4 * c], Init::Normal(proj_std)),
            (Kind::FcProjB, "mlp.c_proj.bias", vec![c], Init::Zeros),
        ];
        let head = [
            (Kind::Wte, "wte.weight".to_string(), vec![self.vp, c], Init::Normal(0.02)),
            (Kind::Wpe, "wpe.weight".to_string(), vec![self.block_size, c], Init::Normal(0.02)),
        ];
        let tail = [
            (Kind::LnfW, "ln_f.weight".to_string(), vec![c], Init::Ones),
            (Kind::LnfB, "ln_f.bias".to_string(), vec![c], Init::Zeros),
        ];
        // Buffer order is kind-major (all layers of ln_1.weight, then ...), so
        // iterate kinds outside and layers inside to yield offsets in order.
        let layers = layer_parts
            .into_iter()
            .flat_map(move |(kind, name, shape, init)| (0..l).map(move |i| (kind, i, format!("h.{i}.{name}"), shape.clone(), init)));
        head.into_iter()
            .map(|(k, n, s, i)| (k, 0, n, s, i))
            .chain(layers)
            .chain(tail.into_iter().map(|(k, n, s, i)| (k, 0, n, s, i)))
            .map(move |(kind, l, name, shape, init)| TensorInfo {
                matrix: shape.len() == 2,
                hf_transposed: matches!(kind, Kind::QkvW | Kind::AttProjW | Kind::FcW | Kind::FcProjW),
                offset: self.layer(kind, l).start,
                name,
                shape,
                init,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_has_124m_parameters() {
        let layout = ParamLayout::new(&GptConfig::default());
        // 124,439,808 with the 50257 vocabulary; padding to 50304 adds 47·768.
        assert_eq!(layout.total(), 124_439_808 + 47 * 768);
    }

    #[test]
    fn tensors_tile_the_buffer_in_order() {
        let cfg = GptConfig {
            n_layer: 3,
            n_head: 2,
            n_embd: 8,
            block_size: 5,
            vocab_size: 70,
            dropout: 0.0,
        };
        let layout = ParamLayout::new(&cfg);
        let ts: Vec<_> = layout.tensors().collect();
        assert_eq!(ts.len(), 2 + 12 * 3 + 2);
        let mut next = 0;
        for t in &ts {
            assert_eq!(t.offset, next, "{}", t.name);
            next += t.len();
        }
        assert_eq!(next, layout.total());
        let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(&names[..4], &["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.1.ln_1.weight"]);
        let qkv = ts.iter().find(|t| t.name == "h.2.attn.c_attn.weight").unwrap();
        assert_eq!((qkv.shape.clone(), qkv.matrix, qkv.hf_transposed), (vec![24, 8], true, true));
        let wte = &ts[0];
        assert_eq!((wte.shape.clone(), wte.matrix, wte.hf_transposed), (vec![128, 8], true, false));
        assert!(!ts.iter().find(|t| t.name == "h.0.mlp.c_fc.bias").unwrap().matrix);
        let proj = ts.iter().find(|t| t.name == "h.0.mlp.c_proj.weight").unwrap();
        assert_eq!(proj.init, Init::Normal(0.02 / 6f32.sqrt()));
    }
}
