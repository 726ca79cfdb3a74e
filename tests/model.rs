//! Whole-model tests of the GPT-2 training core: gradient check, padded
//! vocabulary, overfitting one batch, determinism, bf16 mode.

use kiln::backend::{CpuBackend, Precision, cpu::has_avx512bf16};
use kiln::model::rng::Rng;
use kiln::model::{Gpt, GptConfig};
use kiln::train::adamw::clip_scale;
use kiln::train::{AdamW, AdamWConfig, grad_norm};

fn tiny() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 8,
        vocab_size: 70,
        dropout: 0.0,
    }
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.next_u64() % vocab as u64) as u32).collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

#[test]
fn whole_model_gradient_matches_finite_differences() {
    let cfg = tiny();
    let (b, t) = (2, 8);
    let mut m = Gpt::new(cfg.clone(), Precision::F32, 1).unwrap();
    // Larger weights than GPT-2's init give gradients well above the f32
    // noise floor of the finite differences.
    let mut r = Rng::new(2);
    let pad = cfg.vocab_size * cfg.n_embd..cfg.padded_vocab() * cfg.n_embd;
    for (i, p) in m.params.iter_mut().enumerate() {
        if !pad.contains(&i) {
            *p += (r.normal() * 0.3) as f32;
        }
    }
    let inp = tokens(b * t, cfg.vocab_size, 3);
    let tgt = tokens(b * t, cfg.vocab_size, 4);
    let mask: Vec<u8> = (0..b * t).map(|i| (i % 5 != 2) as u8).collect();
    m.zero_grad();
    m.forward(&inp, Some(&tgt), Some(&mask), b, t).unwrap();
    m.backward().unwrap();
    let grads = m.grads.clone();
    let h = 1e-2f32;
    let mut checked = 0;
    for tensor in m.layout().tensors().collect::<Vec<_>>() {
        let range = tensor.range();
        // The largest gradient of the tensor plus a few random entries.
        let (imax, gmax) = grads[range.clone()]
            .iter()
            .enumerate()
            .fold((0, 0.0f32), |a, (i, g)| if g.abs() > a.1 { (i, g.abs()) } else { a });
        assert!(gmax > 1e-3, "{}: gradient is ~0 everywhere ({gmax})", tensor.name);
        let mut picks = vec![range.start + imax];
        picks.extend((0..3).map(|_| range.start + (r.next_u64() as usize % range.len())));
        for i in picks {
            if pad.contains(&i) {
                continue;
            }
            let orig = m.params[i];
            m.params[i] = orig + h;
            let up = m.forward(&inp, Some(&tgt), Some(&mask), b, t).unwrap().unwrap() as f64;
            m.params[i] = orig - h;
            let down = m.forward(&inp, Some(&tgt), Some(&mask), b, t).unwrap().unwrap() as f64;
            m.params[i] = orig;
            let num = (up - down) / (2.0 * h as f64);
            let got = grads[i] as f64;
            // f32 forward noise ≈ 1e-6 on the loss → ≈ 5e-5 on the quotient;
            // O(h²) curvature terms stay within 3% of the gradient here.
            let tol = 3e-4 + 3e-2 * num.abs().max(got.abs());
            assert!(
                (got - num).abs() < tol,
                "{} [{}]: analytic {got:.6e} vs numeric {num:.6e}",
                tensor.name,
                i - range.start
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked} parameters");
}

#[test]
fn padded_vocabulary_never_contributes() {
    let cfg = tiny();
    let (b, t) = (2, 8);
    let inp = tokens(b * t, cfg.vocab_size, 5);
    let tgt = tokens(b * t, cfg.vocab_size, 6);
    let mut m = Gpt::new(cfg.clone(), Precision::F32, 7).unwrap();
    let pad = cfg.vocab_size * cfg.n_embd..cfg.padded_vocab() * cfg.n_embd;
    assert!(m.params[pad.clone()].iter().all(|&x| x == 0.0), "padded rows start at zero");
    let base = m.forward(&inp, Some(&tgt), None, b, t).unwrap().unwrap();
    // Huge padded embeddings would dominate any softmax that included them.
    m.params[pad.clone()].fill(100.0);
    let loss = m.forward(&inp, Some(&tgt), None, b, t).unwrap().unwrap();
    assert_eq!(loss, base);
    m.zero_grad();
    m.backward().unwrap();
    assert!(m.grads[pad].iter().all(|&g| g == 0.0), "padded rows get no gradient");
    // Ids past the real vocabulary are rejected with their position.
    let mut bad = inp.clone();
    bad[3] = cfg.vocab_size as u32;
    let e = m.forward(&bad, None, None, b, t).unwrap_err().to_string();
    assert!(e.contains("position 3") && e.contains("70"), "{e}");
}

/// Trains `steps` steps on one batch; returns the losses.
fn train(m: &mut Gpt, inp: &[u32], tgt: &[u32], b: usize, t: usize, steps: usize, lr: f32) -> Vec<f32> {
    let mut opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        m.params.len(),
        m.decay_ranges(),
    );
    let mut losses = Vec::new();
    for _ in 0..steps {
        m.zero_grad();
        losses.push(m.forward(inp, Some(tgt), None, b, t).unwrap().unwrap());
        m.backward().unwrap();
        let scale = clip_scale(grad_norm(&m.grads), 1.0);
        opt.update(&mut m.params, &m.grads, lr, scale);
    }
    losses
}

#[test]
fn overfits_one_batch() {
    let cfg = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        block_size: 16,
        vocab_size: 64,
        dropout: 0.0,
    };
    let (b, t) = (2, 16);
    let inp = tokens(b * t, cfg.vocab_size, 8);
    let tgt = tokens(b * t, cfg.vocab_size, 9);
    let mut m = Gpt::new(cfg, Precision::F32, 10).unwrap();
    let losses = train(&mut m, &inp, &tgt, b, t, 300, 1e-2);
    let last = *losses.last().unwrap();
    assert!((losses[0] - 64f32.ln()).abs() < 0.1, "initial loss {} should be ≈ ln 64", losses[0]);
    assert!(last < 0.05, "loss after 300 steps: {last}");
}

#[test]
fn same_seed_same_data_gives_bit_identical_losses() {
    let cfg = tiny();
    let (b, t) = (4, 8);
    let inp = tokens(b * t, cfg.vocab_size, 11);
    let tgt = tokens(b * t, cfg.vocab_size, 12);
    let run = || {
        pool(2).install(|| {
            let mut m = Gpt::new(cfg.clone(), Precision::F32, 13).unwrap();
            let losses = train(&mut m, &inp, &tgt, b, t, 5, 1e-3);
            (
                losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
                m.params.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
            )
        })
    };
    let (a, b2) = (run(), run());
    assert_eq!(a.0, b2.0, "losses differ");
    assert!(a.1 == b2.1, "parameters differ");
    assert_ne!(
        Gpt::new(cfg.clone(), Precision::F32, 14).unwrap().params,
        Gpt::new(cfg, Precision::F32, 13).unwrap().params
    );
}

#[test]
fn bf16_training_tracks_f32() {
    let cfg = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        block_size: 16,
        vocab_size: 64,
        dropout: 0.0,
    };
    let (b, t) = (2, 16);
    let inp = tokens(b * t, cfg.vocab_size, 15);
    let tgt = tokens(b * t, cfg.vocab_size, 16);
    let mut f32m = Gpt::new(cfg.clone(), Precision::F32, 17).unwrap();
    let l32 = train(&mut f32m, &inp, &tgt, b, t, 40, 3e-3);
    // The forced fallback runs f32 matmuls: identical to F32 bit for bit.
    let mut fb = Gpt::with_backend(cfg.clone(), CpuBackend::bf16_without_kernel(), 17).unwrap();
    assert_eq!(fb.precision(), Precision::F32);
    assert_eq!(train(&mut fb, &inp, &tgt, b, t, 40, 3e-3), l32);
    if !has_avx512bf16() {
        println!("skipping the bf16 kernel half: CPU lacks AVX512-BF16");
        return;
    }
    let mut bf = Gpt::new(cfg, Precision::Bf16, 17).unwrap();
    assert_eq!(bf.precision(), Precision::Bf16);
    let l16 = train(&mut bf, &inp, &tgt, b, t, 40, 3e-3);
    assert_ne!(l16, l32, "bf16 mode gave exactly the f32 losses; was the kernel used?");
    for (i, (x, y)) in l16.iter().zip(&l32).enumerate() {
        assert!((x - y).abs() / y < 0.02, "step {i}: bf16 loss {x} vs f32 {y}");
    }
}

#[test]
fn hidden_state_hook_backpropagates_a_scalar_head() {
    // A linear "value head" on the last hidden state: L = Σ hidden · R.
    let cfg = tiny();
    let (b, t) = (1, 8);
    let inp = tokens(b * t, cfg.vocab_size, 18);
    let mut m = Gpt::new(cfg.clone(), Precision::F32, 19).unwrap();
    let rw: Vec<f32> = {
        let mut r = Rng::new(20);
        (0..b * t * cfg.n_embd).map(|_| r.normal() as f32).collect()
    };
    let value = |m: &mut Gpt| {
        m.forward(&inp, None, None, b, t).unwrap();
        m.hidden().iter().zip(&rw).map(|(h, r)| (*h * *r) as f64).sum::<f64>()
    };
    value(&mut m);
    m.zero_grad();
    m.backward_from_dhidden(&rw).unwrap();
    // Check the last layer's MLP input weights, a deep parameter.
    let fc = m.layout().tensors().find(|t| t.name == "h.1.mlp.c_fc.weight").unwrap();
    let i = fc.offset + 5;
    let (g, orig, h) = (m.grads[i] as f64, m.params[i], 1e-2f32);
    m.params[i] = orig + h;
    let up = value(&mut m);
    m.params[i] = orig - h;
    let down = value(&mut m);
    let num = (up - down) / (2.0 * h as f64);
    assert!((g - num).abs() < 1e-3 + 3e-2 * num.abs(), "analytic {g} vs numeric {num}");
    assert!(m.backward().is_err(), "backward without targets must fail, not panic");
}
