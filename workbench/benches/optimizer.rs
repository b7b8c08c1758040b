//! Optimizer step time of Muon against AdamW on the training recipe's parameter
//! set (869,504 parameters: 4 layers, dim 128, SwiGLU 352, vocabulary 1024, tied
//! head), the Newton–Schulz iteration per weight shape against one forward
//! product of that weight, and training tokens per second with fake quantization
//! off and on (W4g32 A8 by straight-through estimation, and with LSQ).
//!
//! `cargo bench --bench optimizer -- [--repeats R] [--train-steps N]`
//! Prints one JSON object per measurement (median of R repeats).

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use workbench::model::config::{ModelConfig, RopeStyle};
use workbench::text::BatchSampler;
use workbench::train::fake_quant::QatSpec;
use workbench::train::init::{init_weights, tensor_shapes};
use workbench::train::muon::{newton_schulz, ParamsMuon};
use workbench::train::optimizer::{OptimizerChoice, TrainOptimizer};
use workbench::train::session::{run, Setup};
use workbench::train::trainer::TrainSpec;

fn recipe() -> ModelConfig {
    ModelConfig {
        dim: 128,
        hidden_dim: 352,
        n_layers: 4,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 32,
        vocab_size: 1024,
        max_seq_len: 128,
        rope_theta: 10000.0,
        rope_style: RopeStyle::HalfSplit,
        norm_eps: 1e-5,
        tied_embeddings: true,
        qk_norm: false,
        attention_bias: false,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `repeats` runs after one warm-up.
fn time(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

fn muon() -> OptimizerChoice {
    OptimizerChoice::Muon {
        params: ParamsMuon {
            scale: workbench::train::muon::MuonScale::AdamRms,
            ..ParamsMuon::default()
        },
        adamw_lr_ratio: 1.0,
    }
}

fn optimizer_steps(repeats: usize) -> Result<()> {
    let config = recipe();
    let mut w = init_weights(&config, 0, &Device::Cpu)?;
    let vars: Vec<(String, Var)> = tensor_shapes(&config)
        .into_iter()
        .map(|(n, s)| Ok((n.clone(), Var::from_tensor(&w.take(&n, &s)?)?)))
        .collect::<Result<_>>()?;
    let params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    // One set of gradients (of Σ W ⊙ G for Gaussian G), reused by every step.
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)?;
    for (_, v) in &vars {
        let g = Tensor::randn(0f32, 1e-3, v.shape(), &Device::Cpu)?;
        loss = (loss + (v.as_tensor() * g)?.sum_all()?)?;
    }
    let grads = loss.backward()?;
    let mut results = Vec::new();
    for choice in [OptimizerChoice::Adamw, muon()] {
        let mut opt = TrainOptimizer::new(&choice, &vars, 0.1)?;
        opt.set_lr(1e-4);
        let seconds = time(repeats, || opt.step(&grads))?;
        results.push(seconds);
        println!(
            "{{\"bench\":\"optimizer_step\",\"optimizer\":\"{}\",\"parameters\":{params},\"ms_per_step\":{:.3}}}",
            choice.name(),
            seconds * 1e3
        );
    }
    println!(
        "{{\"bench\":\"optimizer_step\",\"muon_over_adamw\":{:.2}}}",
        results[1] / results[0]
    );
    // Newton–Schulz per hidden weight shape, against that weight's forward
    // product for one batch of 16 × 128 tokens.
    for (name, rows, cols) in [
        ("q/o", 128, 128),
        ("k/v", 64, 128),
        ("gate/up", 352, 128),
        ("down", 128, 352),
    ] {
        let g = Tensor::randn(0f32, 1.0, (rows, cols), &Device::Cpu)?;
        let ns = time(repeats, || newton_schulz(&g, 5).map(|_| ()))?;
        let x = Tensor::randn(0f32, 1.0, (2048, cols), &Device::Cpu)?;
        let product = time(repeats, || Ok(x.matmul(&g.t()?).map(|_| ())?))?;
        let (m, n) = (rows.min(cols) as f64, rows.max(cols) as f64);
        // Per step: X Xᵀ (2m²n), A A (2m³), B X (2m²n) flops.
        let ns_flops = 5.0 * (4.0 * m * m * n + 2.0 * m * m * m);
        let product_flops = 2.0 * 2048.0 * rows as f64 * cols as f64;
        println!(
            "{{\"bench\":\"newton_schulz\",\"weight\":\"{name}\",\"shape\":[{rows},{cols}],\"ns_us\":{:.1},\"forward_product_us\":{:.1},\"ns_flops_over_product\":{:.2}}}",
            ns * 1e6,
            product * 1e6,
            ns_flops / product_flops
        );
    }
    Ok(())
}

fn training(steps: usize) -> Result<()> {
    let config = recipe();
    let spec = TrainSpec {
        steps,
        batch: 16,
        context: 128,
        lr: 1e-3,
        min_lr: 1e-4,
        warmup: 2,
        weight_decay: 0.1,
        grad_clip: 1.0,
        eval_every: steps,
        checkpoint_every: steps,
        seed: 0,
    };
    let stream: Vec<u32> = (0..200_000u32).map(|i| (i * 7 + i / 13) % 1024).collect();
    let sampler = BatchSampler::new(stream, spec.context, spec.batch, 0)?;
    let w4a8 = QatSpec {
        weight_bits: Some(4),
        weight_group: Some(32),
        activation_bits: Some(8),
        lsq: false,
        quantize_head: false,
    };
    let lsq = QatSpec {
        lsq: true,
        ..w4a8.clone()
    };
    let eval = sampler.batch(u64::MAX);
    let eval = vec![(eval.0[..128].to_vec(), eval.1[..128].to_vec())];
    for choice in [OptimizerChoice::Adamw, muon()] {
        for (label, quant) in [
            ("off", None),
            ("w4g32a8_ste", Some(&w4a8)),
            ("w4g32a8_lsq", Some(&lsq)),
        ] {
            let dir = tempfile::tempdir()?;
            let trained = run(&Setup {
                config: &config,
                spec: &spec,
                batches: &|s| sampler.batch(s),
                eval: &eval,
                work_dir: dir.path(),
                extra_files: &[],
                verbose: false,
                start: None,
                optimizer: &choice,
                quant,
                evaluate: None,
                identity: Some("bench"),
            })?;
            println!(
                "{{\"bench\":\"training\",\"optimizer\":\"{}\",\"fake_quant\":\"{label}\",\"steps\":{steps},\"tokens_per_step\":2048,\"tokens_per_s\":{:.0}}}",
                choice.name(),
                trained.tokens_per_second
            );
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let repeats = value("--repeats").unwrap_or(9);
    let steps = value("--train-steps").unwrap_or(20);
    // On a rayon worker, as the study's units run (see benches/decode.rs).
    let pool = rayon::ThreadPoolBuilder::new().build()?;
    pool.install(|| {
        optimizer_steps(repeats)?;
        training(steps)
    })
}
