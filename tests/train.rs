//! End-to-end tests of the training recipe: it learns, writes a loadable model,
//! and a killed run resumes to exactly the result of an uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus(dir: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/tinyshakespeare/input.txt");
    let Ok(text) = std::fs::read_to_string(&source) else {
        eprintln!("skipping: no offline mirror at {}", source.display());
        return None;
    };
    let path = dir.join("corpus.txt");
    std::fs::write(&path, &text[..60_000]).unwrap();
    Some(path)
}

fn config(dir: &Path, corpus: &Path, output: &Path) -> PathBuf {
    let text = format!(
        r#"kind = "train"
seed = 5
output = "{}"
[data]
train = "{}"
vocab_size = 300
eval_windows = 8
[model]
dim = 32
hidden_dim = 64
n_layers = 2
n_heads = 4
n_kv_heads = 2
[optimizer]
steps = 80
batch = 4
context = 32
lr = 0.01
warmup = 5
eval_every = 20
checkpoint_every = 20
"#,
        output.display(),
        corpus.display()
    );
    let path = dir.join("train.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, out: &Path, abort_after: Option<usize>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workbench"));
    c.args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(out);
    if let Some(n) = abort_after {
        c.env("WORKBENCH_ABORT_AFTER_STEPS", n.to_string());
    }
    c.output().unwrap()
}

fn column(csv: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().to_string())
        .collect()
}

#[test]
fn training_learns_saves_and_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("wb-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let Some(corpus) = corpus(&dir) else { return };

    // Uninterrupted.
    let whole_model = dir.join("model-whole");
    let cfg = config(&dir, &corpus, &whole_model);
    let o = run(&cfg, &dir.join("whole"), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let valid: Vec<f64> = column(&dir.join("whole/tables/loss_curve.csv"), "valid_loss")
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(valid.len(), 4);
    assert!(
        valid[3] < valid[0] - 0.15,
        "validation loss did not fall: {valid:?}"
    );
    assert!(
        valid[0] < (300f64).ln() + 0.5,
        "first validation loss {} is above uniform",
        valid[0]
    );
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(whole_model.join(f).is_file(), "model folder lacks {f}");
    }

    // Killed after the checkpoint at step 40, then resumed.
    let resumed_model = dir.join("model-resumed");
    let cfg = config(&dir, &corpus, &resumed_model);
    let crashed = run(&cfg, &dir.join("resumed"), Some(40));
    assert!(!crashed.status.success(), "the run should have aborted");
    assert!(!resumed_model.exists());
    // The checkpoint opens like a model: weights, optimizer state, config, tokenizer.
    let work = std::fs::read_dir(dir.join("resumed/work"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "weights.safetensors",
        "optimizer.safetensors",
        "state.json",
        "config.json",
        "tokenizer.json",
    ] {
        assert!(
            work.join("checkpoint").join(f).is_file(),
            "checkpoint lacks {f}"
        );
    }
    let o = run(&cfg, &dir.join("resumed"), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        column(&dir.join("resumed/tables/summary.csv"), "resumed_from"),
        vec!["40"]
    );
    assert_eq!(
        column(&dir.join("whole/tables/loss_curve.csv"), "train_loss"),
        column(&dir.join("resumed/tables/loss_curve.csv"), "train_loss"),
        "a resumed run must follow the same losses"
    );
    assert!(
        std::fs::read(whole_model.join("model.safetensors")).unwrap()
            == std::fs::read(resumed_model.join("model.safetensors")).unwrap(),
        "a resumed run must end with the same weights"
    );
    rotated_trained_model_computes_the_same_logits(&whole_model);
    distilled_student_learns_from_its_teacher(&dir, &corpus, &whole_model);
}

/// A student trained on the teacher's samples (`[data.distill]`) adopts the
/// teacher's tokenizer, learns, reruns to the same losses, and a teacher whose
/// vocabulary disagrees with the config is refused with the key named.
fn distilled_student_learns_from_its_teacher(dir: &Path, corpus: &Path, teacher: &Path) {
    let student = dir.join("student");
    let base = std::fs::read_to_string(config(dir, corpus, &student)).unwrap();
    let distill = format!(
        "[data.distill]\nteacher = \"{}\"\nsequences = 48\nprompt = 4\nlength = 32\n",
        teacher.display()
    );
    let text = base
        .replace("steps = 80", "steps = 40")
        .replace("[model]", &format!("{distill}[model]"));
    let cfg = dir.join("student.toml");
    std::fs::write(&cfg, &text).unwrap();
    for run_dir in ["student-a", "student-b"] {
        let o = run(&cfg, &dir.join(run_dir), None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let summary = dir.join("student-a/tables/summary.csv");
    assert_eq!(
        column(&summary, "source"),
        vec![format!("distilled from {}", teacher.display())]
    );
    // 48 samples of 32 tokens.
    assert_eq!(column(&summary, "train_tokens"), vec!["1536"]);
    assert_eq!(
        std::fs::read(student.join("tokenizer.json")).unwrap(),
        std::fs::read(teacher.join("tokenizer.json")).unwrap()
    );
    let curve = |d: &str| column(&dir.join(d).join("tables/loss_curve.csv"), "train_loss");
    assert_eq!(curve("student-a"), curve("student-b"));
    let losses: Vec<f64> = curve("student-a")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        losses[losses.len() - 1] < losses[0] - 0.3,
        "the student did not learn: {losses:?}"
    );

    let bad = dir.join("student-bad.toml");
    std::fs::write(&bad, text.replace("vocab_size = 300", "vocab_size = 400")).unwrap();
    let o = run(&bad, &dir.join("student-bad"), None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("data.distill.teacher") && stderr.contains("300 entries"),
        "{stderr}"
    );
}

/// QuaRot-style rotation of a trained model (its norm gains and weights are no
/// longer at their initial values) leaves its logits unchanged.
fn rotated_trained_model_computes_the_same_logits(folder: &Path) {
    use candle_core::{Device, Tensor};
    use workbench::model::cache::KvCache;
    use workbench::model::llama::Model;
    use workbench::model::rotate::rotate_model;
    use workbench::primitives::rotation::Rotation;
    let load = || {
        let (config, weights) = workbench::model::hf::load(folder, &Device::Cpu).unwrap();
        Model::from_weights(config, weights).unwrap()
    };
    let reference = load();
    let tokens: Vec<u32> = (0..24u32).map(|i| (i * 37 + 11) % 300).collect();
    let tokens = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let n = reference.config.n_layers;
    let logits = |m: &Model| {
        m.forward(&tokens, &mut KvCache::new(n), None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let expected = logits(&reference);
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    for rotation in [Rotation::Hadamard, Rotation::RandomOrthogonal { seed: 9 }] {
        let mut model = load();
        let applied = rotate_model(&mut model, rotation).unwrap();
        // dim 32, hidden 64 and head_dim 8 all have Hadamard matrices.
        assert!(applied.mlp_hidden && applied.value_heads);
        let worst = logits(&model)
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * scale,
            "{rotation:?}: logits differ by {worst} (scale {scale})"
        );
    }
}
