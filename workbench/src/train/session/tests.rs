use super::*;
use crate::model::config::RopeStyle;
use crate::train::muon::ParamsMuon;

fn tiny() -> ModelConfig {
    ModelConfig {
        dim: 16,
        hidden_dim: 32,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 8,
        vocab_size: 32,
        max_seq_len: 16,
        rope_theta: 10000.0,
        rope_style: RopeStyle::HalfSplit,
        norm_eps: 1e-5,
        tied_embeddings: true,
        qk_norm: false,
        attention_bias: false,
    }
}

fn spec() -> TrainSpec {
    TrainSpec {
        steps: 12,
        batch: 4,
        context: 8,
        lr: 0.01,
        min_lr: 0.001,
        warmup: 2,
        weight_decay: 0.1,
        grad_clip: 1.0,
        eval_every: 4,
        checkpoint_every: 4,
        seed: 3,
    }
}

/// A learnable stream: each token mostly follows from the previous one.
fn stream() -> Vec<u32> {
    (0..4000u32).map(|i| (i * 5 + i / 9) % 32).collect()
}

#[test]
fn muon_with_lsq_learns_and_resumes_to_the_same_bits() {
    let config = tiny();
    let spec = spec();
    let sampler = crate::text::BatchSampler::new(stream(), spec.context, spec.batch, 1).unwrap();
    let windows = crate::text::eval_windows(&stream()[..400], spec.context);
    let quant = QatSpec {
        weight_bits: Some(4),
        weight_group: Some(8),
        activation_bits: Some(8),
        lsq: true,
        quantize_head: false,
    };
    let optimizer = OptimizerChoice::Muon {
        params: ParamsMuon::default(),
        adamw_lr_ratio: 1.0,
    };
    let evaluate = |_step: usize, snap: &Snapshot| -> Result<serde_json::Value> {
        let model = snap.model(&tiny())?;
        Ok(serde_json::json!(evaluate_loss(&model, &windows, 4)?))
    };
    let dirs = tempfile::tempdir().unwrap();
    let run_in = |dir: &Path, batches: &dyn Fn(u64) -> (Vec<u32>, Vec<u32>)| {
        run(&Setup {
            config: &config,
            spec: &spec,
            batches,
            eval: &[],
            work_dir: dir,
            extra_files: &[],
            verbose: false,
            start: None,
            optimizer: &optimizer,
            quant: Some(&quant),
            evaluate: Some(&evaluate),
            identity: Some("test"),
        })
    };
    let whole = run_in(&dirs.path().join("whole"), &|s| sampler.batch(s)).unwrap();
    // It learns: validation loss falls well below uniform (ln 32 = 3.47).
    let losses: Vec<f64> = whole
        .evaluations
        .iter()
        .map(|(_, v)| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        whole.evaluations.iter().map(|e| e.0).collect::<Vec<_>>(),
        [0, 4, 8, 12]
    );
    assert!(losses[3] < losses[0] - 0.3, "{losses:?}");
    // Learned steps exist for every quantized layer and moved from their start.
    assert_eq!(whole.steps.len(), 2 * 7 * 2);
    let groups: Vec<&str> = whole.split.iter().map(|g| g.1).collect();
    assert_eq!(groups.iter().filter(|g| **g == "muon").count(), 14);
    assert_eq!(
        groups.iter().filter(|g| **g == "adamw_no_decay").count(),
        28
    );

    // A crash at step 6 (after the checkpoint at 4), then a resumed run.
    let crashed = dirs.path().join("crashed");
    let failing = |s: u64| {
        if s == 6 {
            panic!("simulated crash");
        }
        sampler.batch(s)
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_in(&crashed, &failing)));
    assert!(outcome.is_err());
    let resumed = run_in(&crashed, &|s| sampler.batch(s)).unwrap();
    assert_eq!(resumed.resumed_from, 4);
    assert_eq!(resumed.history, whole.history);
    assert_eq!(resumed.evaluations, whole.evaluations);
    for ((n, a), (m, b)) in whole.weights.iter().zip(&resumed.weights) {
        assert_eq!(n, m);
        let (a, b) = (a.flatten_all().unwrap(), b.flatten_all().unwrap());
        assert_eq!(
            a.to_vec1::<f32>().unwrap(),
            b.to_vec1::<f32>().unwrap(),
            "{n}"
        );
    }
    for (n, v) in &whole.steps {
        let a = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = resumed.steps[n]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b, "{n}");
    }
}

#[test]
fn the_recipe_keeps_its_checkpoint_fingerprint() {
    let (config, spec) = (tiny(), spec());
    let setup = Setup {
        config: &config,
        spec: &spec,
        batches: &|_| (vec![], vec![]),
        eval: &[],
        work_dir: Path::new("."),
        extra_files: &[],
        verbose: false,
        start: None,
        optimizer: &OptimizerChoice::Adamw,
        quant: None,
        evaluate: None,
        identity: None,
    };
    assert_eq!(
        setup.fingerprint().unwrap(),
        serde_json::to_string(&(&config, &spec)).unwrap()
    );
}
