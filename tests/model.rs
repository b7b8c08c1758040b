//! The Llama decoder against an independent reference of llama2.c's run.c, and
//! the properties the studies rely on: unconfigured layers change nothing, the
//! KV cache rolls back exactly, bad checkpoints give clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use candle_core::{Device, Tensor};
use workbench::model::cache::KvCache;
use workbench::model::linear::{LinearConfig, Observer};
use workbench::model::llama::Model;
use workbench::model::llama2c;

fn stories260k() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/stories260K/stories260K.bin");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} not found (the offline mirror)",
            path.display()
        );
        None
    }
}

fn load(path: &Path) -> Model {
    let (config, weights) = llama2c::load(path, &Device::Cpu).unwrap();
    Model::from_weights(config, weights).unwrap()
}

fn logits_of(
    model: &Model,
    tokens: &[u32],
    cache: &mut KvCache,
    observer: Option<&dyn Observer>,
) -> Vec<Vec<f32>> {
    let t = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&t, cache, observer).unwrap();
    logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

/// A fixed pseudo-random token sequence (a tiny LCG keeps the test self-contained).
fn tokens(n: usize, vocab: u32, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// Largest |a - b| over the largest |b|, per position.
fn max_relative(a: &[Vec<f32>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = x
                .iter()
                .zip(y)
                .fold(0.0f64, |m, (p, q)| m.max((*p as f64 - q).abs()));
            diff / scale
        })
        .fold(0.0, f64::max)
}

#[test]
fn stories260k_matches_the_run_c_reference() {
    let Some(path) = stories260k() else { return };
    let model = load(&path);
    assert_eq!(model.config.dim, 64);
    assert_eq!(model.config.hidden_dim, 172);
    assert_eq!((model.config.n_heads, model.config.n_kv_heads), (8, 4));
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/llama2c_reference.py");
    for seed in [1u64, 2, 3] {
        let seq = tokens(12, 512, seed);
        let out = Command::new("python3")
            .arg(&script)
            .arg(&path)
            .arg(serde_json::to_string(&seq).unwrap())
            .output()
            .expect("python3 runs the reference");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let reference: Vec<Vec<f64>> = serde_json::from_value(reference["logits"].clone()).unwrap();
        // All positions in one prefill pass...
        let prefill = logits_of(&model, &seq, &mut KvCache::new(model.config.n_layers), None);
        let err = max_relative(&prefill, &reference);
        assert!(
            err < 1e-4,
            "prefill: relative error {err} for tokens {seq:?}"
        );
        // ...and one token at a time through the KV cache, as run.c does.
        let mut cache = KvCache::new(model.config.n_layers);
        let decode: Vec<Vec<f32>> = seq
            .iter()
            .flat_map(|&t| logits_of(&model, &[t], &mut cache, None))
            .collect();
        let err = max_relative(&decode, &reference);
        assert!(
            err < 1e-4,
            "decode: relative error {err} for tokens {seq:?}"
        );
    }
}

/// Counts what it sees; changes nothing.
#[derive(Default)]
struct Counter {
    linears: Mutex<Vec<String>>,
    residuals: Mutex<Vec<usize>>,
}

impl Observer for Counter {
    fn linear(&self, name: &str, input: &Tensor, output: &Tensor) -> anyhow::Result<()> {
        assert_eq!(input.dims()[..2], output.dims()[..2]);
        self.linears.lock().unwrap().push(name.to_string());
        Ok(())
    }
    fn residual(&self, layer: usize, _x: &Tensor) -> anyhow::Result<()> {
        self.residuals.lock().unwrap().push(layer);
        Ok(())
    }
}

#[test]
fn observers_and_empty_configs_leave_logits_bit_identical() {
    let Some(path) = stories260k() else { return };
    let mut model = load(&path);
    let seq = tokens(9, 512, 7);
    let n = model.config.n_layers;
    let plain = logits_of(&model, &seq, &mut KvCache::new(n), None);
    let counter = Counter::default();
    let observed = logits_of(&model, &seq, &mut KvCache::new(n), Some(&counter));
    assert_eq!(plain, observed);
    assert_eq!(counter.linears.lock().unwrap().len(), 7 * n + 1);
    assert_eq!(
        *counter.residuals.lock().unwrap(),
        (0..n).collect::<Vec<_>>()
    );
    for linear in model.linears_mut() {
        linear.configure(LinearConfig::default()).unwrap();
    }
    let configured = logits_of(&model, &seq, &mut KvCache::new(n), None);
    assert_eq!(plain, configured);
}

#[test]
fn kv_cache_rollback_matches_recomputation() {
    let Some(path) = stories260k() else { return };
    let model = load(&path);
    let n = model.config.n_layers;
    let seq = tokens(14, 512, 11);
    let (prompt, draft) = seq.split_at(10);
    let mut cache = KvCache::new(n);
    logits_of(&model, prompt, &mut cache, None);
    // Verify a draft of 4, reject it, verify it again: identical logits.
    let first = logits_of(&model, draft, &mut cache, None);
    assert_eq!(cache.len(), 14);
    cache.rollback(4).unwrap();
    assert_eq!(cache.len(), 10);
    let again = logits_of(&model, draft, &mut cache, None);
    assert_eq!(first, again);
    // Roll back part of the draft and decode the rest one token at a time: the
    // same as computing the whole sequence from scratch.
    cache.rollback(3).unwrap();
    let tail: Vec<Vec<f32>> = draft[1..]
        .iter()
        .flat_map(|&t| logits_of(&model, &[t], &mut cache, None))
        .collect();
    let full = logits_of(&model, &seq, &mut KvCache::new(n), None);
    for (a, b) in tail.iter().zip(&full[11..]) {
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff < 1e-4,
            "rolled-back decode differs from recomputation by {diff}"
        );
    }
    assert!(cache.rollback(100).is_err());
}

#[test]
fn bad_checkpoints_give_clear_errors() {
    let Some(path) = stories260k() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let err = llama2c::parse(&bytes[..bytes.len() / 2], "half.bin", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("half.bin: truncated: tensor `model.layers."),
        "{err}"
    );
    assert!(err.contains("of shape ["), "{err}");
    let err = llama2c::parse(&bytes[..10], "tiny.bin", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("too short"), "{err}");
    let mut bad = bytes.clone();
    bad[0..4].copy_from_slice(&0i32.to_le_bytes());
    let err = llama2c::parse(&bad, "zero.bin", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("header field dim is 0"), "{err}");
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 8]);
    let err = llama2c::parse(&longer, "long.bin", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bytes left after the last tensor"), "{err}");
}

mod hugging_face {
    use super::*;
    use std::collections::HashMap;
    use workbench::model::config::RopeStyle;
    use workbench::model::hf::{self, HfConfig};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wb-hf-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn stories260k_saved_as_hugging_face_gives_the_same_logits() {
        let Some(path) = stories260k() else { return };
        let reference = load(&path);
        let mut model = load(&path);
        // Meta-to-HF conversion: permute q/k rows to the half-split RoPE layout.
        let head_dim = model.config.head_dim;
        for b in model.blocks.iter_mut() {
            for linear in [&mut b.q, &mut b.k] {
                let permuted = hf::interleaved_to_half_split(linear.weight(), head_dim).unwrap();
                linear.set_weight(permuted).unwrap();
            }
        }
        model.config.rope_style = RopeStyle::HalfSplit;
        let dir = scratch("stories");
        hf::save(&model, &dir).unwrap();
        let (config, weights) = hf::load(&dir, &Device::Cpu).unwrap();
        assert!(config.tied_embeddings);
        let loaded = Model::from_weights(config, weights).unwrap();
        let seq = tokens(16, 512, 5);
        let n = reference.config.n_layers;
        let a = logits_of(&reference, &seq, &mut KvCache::new(n), None);
        let b = logits_of(&loaded, &seq, &mut KvCache::new(n), None);
        let b64: Vec<Vec<f64>> = b
            .iter()
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect();
        let err = max_relative(&a, &b64);
        assert!(
            err < 1e-5,
            "HF round trip changed logits by {err} (relative)"
        );
    }

    /// Writes a random checkpoint of `hf_config`, optionally in two shards.
    fn write_random(dir: &Path, hf_config: &HfConfig, sharded: bool) {
        let c = hf_config.to_model_config().unwrap();
        let t = workbench::train::init::tensor_shapes(&c);
        let tensors: Vec<(String, Tensor)> = t
            .into_iter()
            .map(|(name, shape)| {
                let x = Tensor::randn(0f32, 0.2, shape, &Device::Cpu).unwrap();
                // Norm gains near 1, as trained models have.
                let x = if name.ends_with("norm.weight") {
                    (x + 1.0).unwrap()
                } else {
                    x
                };
                (name, x)
            })
            .collect();
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(hf_config).unwrap(),
        )
        .unwrap();
        if sharded {
            let (a, b) = tensors.split_at(tensors.len() / 2);
            let mut map = serde_json::Map::new();
            for (file, part) in [
                ("model-00001-of-00002.safetensors", a),
                ("model-00002-of-00002.safetensors", b),
            ] {
                let m: HashMap<String, Tensor> = part.iter().cloned().collect();
                candle_core::safetensors::save(&m, dir.join(file)).unwrap();
                for (name, _) in part {
                    map.insert(name.clone(), file.into());
                }
            }
            let index = serde_json::json!({"metadata": {}, "weight_map": map});
            std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        } else {
            let m: HashMap<String, Tensor> = tensors.into_iter().collect();
            candle_core::safetensors::save(&m, dir.join("model.safetensors")).unwrap();
        }
    }

    fn tiny(model_type: &str, heads: usize, kv_heads: usize, tied: bool) -> HfConfig {
        HfConfig {
            model_type: model_type.into(),
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv_heads),
            head_dim: None,
            vocab_size: 40,
            max_position_embeddings: 64,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: tied,
            attention_bias: false,
        }
    }

    #[test]
    fn tiny_checkpoints_load_run_and_save_back() {
        let cases = [
            ("llama-gqa-tied", tiny("llama", 4, 2, true), false),
            ("mistral-mha-untied", tiny("mistral", 4, 4, false), true),
            ("qwen2-bias", tiny("qwen2", 4, 1, true), false),
            ("qwen3-qknorm", tiny("qwen3", 2, 1, false), true),
        ];
        for (name, hf_config, sharded) in cases {
            let dir = scratch(name);
            write_random(&dir, &hf_config, sharded);
            let (config, weights) = hf::load(&dir, &Device::Cpu).unwrap();
            assert_eq!(config.qk_norm, hf_config.model_type == "qwen3", "{name}");
            assert_eq!(
                config.attention_bias,
                hf_config.model_type == "qwen2",
                "{name}"
            );
            let model =
                Model::from_weights(config, weights).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let seq = tokens(7, 40, 3);
            let logits = logits_of(&model, &seq, &mut KvCache::new(2), None);
            assert!(logits.iter().flatten().all(|v| v.is_finite()), "{name}");
            // Saved and loaded again: the same logits to the bit.
            let again_dir = scratch(&format!("{name}-saved"));
            hf::save(&model, &again_dir).unwrap();
            let (config, weights) = hf::load(&again_dir, &Device::Cpu).unwrap();
            let again = Model::from_weights(config, weights).unwrap();
            assert_eq!(
                logits,
                logits_of(&again, &seq, &mut KvCache::new(2), None),
                "{name}"
            );
            // Prefill and step-by-step decode agree.
            let mut cache = KvCache::new(2);
            let stepwise: Vec<Vec<f32>> = seq
                .iter()
                .flat_map(|&t| logits_of(&model, &[t], &mut cache, None))
                .collect();
            for (a, b) in stepwise.iter().zip(&logits) {
                let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(d < 1e-4, "{name}: decode differs from prefill by {d}");
            }
        }
    }

    #[test]
    fn mismatched_checkpoints_name_the_tensor_and_shape() {
        let dir = scratch("mismatch");
        write_random(&dir, &tiny("llama", 4, 2, true), false);
        // The config claims a wider MLP than the tensors have.
        let mut wider = tiny("llama", 4, 2, true);
        wider.intermediate_size = 64;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&wider).unwrap(),
        )
        .unwrap();
        let (config, weights) = hf::load(&dir, &Device::Cpu).unwrap();
        let err = format!("{:#}", Model::from_weights(config, weights).err().unwrap());
        assert!(
            err.contains(
                "`model.layers.0.mlp.gate_proj.weight` has shape [48, 32]; expected [64, 32]"
            ),
            "{err}"
        );

        let mut unknown = tiny("llama", 4, 2, true);
        unknown.model_type = "gpt2".into();
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&unknown).unwrap(),
        )
        .unwrap();
        let err = format!("{:#}", hf::load(&dir, &Device::Cpu).err().unwrap());
        assert!(err.contains("model_type `gpt2` is not supported"), "{err}");

        std::fs::remove_file(dir.join("model.safetensors")).unwrap();
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&tiny("llama", 4, 2, true)).unwrap(),
        )
        .unwrap();
        let err = format!("{:#}", hf::load(&dir, &Device::Cpu).err().unwrap());
        assert!(err.contains("no model.safetensors"), "{err}");

        std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
        let err = format!("{:#}", hf::load(&dir, &Device::Cpu).err().unwrap());
        assert!(err.contains("model.safetensors"), "{err}");
    }
}

#[test]
fn differentiable_forward_matches_the_fused_one_and_has_gradients() {
    let Some(path) = stories260k() else { return };
    let (config, weights) = llama2c::load(&path, &Device::Cpu).unwrap();
    let names = weights.names();
    let mut model = Model::from_weights(config, weights).unwrap();
    let seq = tokens(10, 512, 9);
    let n = model.config.n_layers;
    let fused = logits_of(&model, &seq, &mut KvCache::new(n), None);
    model.differentiable = true;
    let composite = logits_of(&model, &seq, &mut KvCache::new(n), None);
    let c64: Vec<Vec<f64>> = composite
        .iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    let err = max_relative(&fused, &c64);
    assert!(
        err < 1e-5,
        "composite RMSNorm/RoPE differ from the fused kernels by {err}"
    );
    assert!(names.len() > 10);

    // Gradients reach every weight through the composite path.
    let var = candle_core::Var::from_tensor(model.blocks[0].q.weight()).unwrap();
    model.blocks[0]
        .q
        .set_weight(var.as_tensor().clone())
        .unwrap();
    let t = Tensor::new(seq.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&t, &mut KvCache::new(n), None).unwrap();
    let loss = logits.sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .expect("a gradient for the query weight");
    assert!(
        g.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

/// The model's logits on `seq` from an empty cache, in f64 for comparisons.
fn reference_logits(model: &Model, seq: &[u32]) -> Vec<Vec<f64>> {
    let n = model.config.n_layers;
    logits_of(model, seq, &mut KvCache::new(n), None)
        .iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

#[test]
fn a_rotated_model_computes_the_same_logits() {
    use workbench::model::rotate::{fold_norms, rotate_model};
    use workbench::primitives::rotation::Rotation;
    let Some(path) = stories260k() else { return };
    let reference = load(&path);
    let seq = tokens(12, 512, 21);
    let n = reference.config.n_layers;
    let expected64 = reference_logits(&reference, &seq);
    let mut folded_model = load(&path);
    fold_norms(&mut folded_model).unwrap();
    let folded = logits_of(&folded_model, &seq, &mut KvCache::new(n), None);
    let f = max_relative(&folded, &expected64);
    assert!(f < 1e-5, "folding the norms changed logits by {f}");
    for rotation in [
        Rotation::Hadamard,
        Rotation::RandomHadamard { seed: 4 },
        Rotation::RandomOrthogonal { seed: 4 },
    ] {
        let mut model = load(&path);
        // Residual rotation (dim 64), the online rotation of the MLP hidden
        // activation (width 172 = 43·4: a Williamson-based Hadamard) and the
        // per-head rotation of values and outputs (head_dim 8).
        let applied = rotate_model(&mut model, rotation).unwrap();
        assert!(applied.mlp_hidden && applied.value_heads, "{applied:?}");
        let rotated = logits_of(&model, &seq, &mut KvCache::new(n), None);
        let r = max_relative(&rotated, &expected64);
        assert!(
            r < 1e-4,
            "{rotation:?}: the rotated model's logits differ by {r}"
        );
        // And the rotation really moved the weights.
        for (a, b) in [
            (&model.blocks[0].q, &reference.blocks[0].q),
            (&model.blocks[0].v, &reference.blocks[0].v),
            (&model.blocks[0].down, &reference.blocks[0].down),
        ] {
            assert!(a.weight().to_vec2::<f32>().unwrap() != b.weight().to_vec2::<f32>().unwrap());
        }
    }
    let mut unfolded = load(&path);
    let q = workbench::model::rotate::rotation_tensor(Rotation::Hadamard, 64)
        .unwrap()
        .unwrap();
    assert!(workbench::model::rotate::rotate_residual(&mut unfolded, &q).is_err());
}

#[test]
fn smoothing_and_key_rotation_leave_logits_unchanged_and_kv_quantization_costs() {
    use workbench::model::kv_quant::KvQuant;
    use workbench::model::rotate::{online_rotation, smooth_linear};
    use workbench::primitives::rotation::Rotation;
    let Some(path) = stories260k() else { return };
    let reference = load(&path);
    let seq = tokens(16, 512, 5);
    let n = reference.config.n_layers;
    let expected64 = reference_logits(&reference, &seq);
    // SmoothQuant scaling with arbitrary positive scales is exact.
    let mut smoothed = load(&path);
    for linear in smoothed.linears_mut() {
        let width = linear.weight().dim(1).unwrap();
        let s: Vec<f32> = (0..width).map(|i| 0.25 + (i % 7) as f32 * 0.5).collect();
        smooth_linear(linear, &Tensor::new(s.as_slice(), &Device::Cpu).unwrap()).unwrap();
    }
    let r = max_relative(
        &logits_of(&smoothed, &seq, &mut KvCache::new(n), None),
        &expected64,
    );
    assert!(r < 1e-4, "smoothing changed logits by {r}");
    // 8-bit KV with and without the per-head key rotation: close to the original,
    // and 2-bit much further away.
    let head_dim = reference.config.head_dim;
    let distance = |bits: u8, rotate: bool| {
        let mut m = load(&path);
        m.kv_quant = Some(KvQuant {
            bits,
            group: head_dim,
            key_rotation: rotate.then(|| {
                online_rotation(Rotation::Hadamard, head_dim)
                    .unwrap()
                    .unwrap()
                    .map
            }),
        });
        max_relative(
            &logits_of(&m, &seq, &mut KvCache::new(n), None),
            &expected64,
        )
    };
    let (kv8, kv8_rotated, kv2) = (distance(8, false), distance(8, true), distance(2, false));
    assert!(kv8 > 0.0 && kv8 < 0.1, "KV8 {kv8}");
    assert!(
        kv8_rotated > 0.0 && kv8_rotated < 0.1,
        "KV8 rotated {kv8_rotated}"
    );
    assert!(kv2 > 5.0 * kv8, "KV2 {kv2} vs KV8 {kv8}");
}

/// The online rotations go through the `hadamard` kernel for the Hadamard
/// schemes: they must equal the dense product x·R of the same matrix, for
/// powers of two, symmetric (Paley II) and non-symmetric bases, with and
/// without random signs.
#[test]
fn online_hadamard_kernel_equals_dense_rotation() {
    use workbench::model::rotate::{online_rotation, rotation_tensor};
    use workbench::primitives::rotation::Rotation;
    for n in [8, 12, 20, 28, 36, 52, 64, 172] {
        for rotation in [Rotation::Hadamard, Rotation::RandomHadamard { seed: 5 }] {
            let online = online_rotation(rotation, n).unwrap().unwrap();
            assert!(online.map.describe().contains("hadamard kernel"));
            let dense = rotation_tensor(rotation, n).unwrap().unwrap();
            let x = Tensor::randn(0f32, 1.0, (3, 5, n), &Device::Cpu).unwrap();
            let fast = online.map.apply(&x).unwrap();
            let slow = x.broadcast_matmul(&dense).unwrap();
            let diff = (fast - &slow)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "n = {n}, {rotation:?}: {diff}");
        }
    }
}
