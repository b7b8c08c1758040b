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
