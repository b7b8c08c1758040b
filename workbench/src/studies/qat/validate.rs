//! Every check of a QAT config, each located at the key to fix.

use super::config::{
    check_names, check_qat_weights, resolve, Budget, QatConfig, MODES, OPTIMIZERS,
};
use crate::experiment::config::KeyPath;
use crate::experiment::study::Problems;
use crate::model::config::ModelConfig;
use crate::model::transforms::parse_weight_quantizer;
use crate::primitives::quant::Granularity;
use crate::primitives::rotation::SCHEMES;
use crate::studies::eval::config::resolve_checkpoint;

/// Records every problem of `c` (and fills in the resolved paths).
pub fn check(c: &mut QatConfig, problems: &mut Problems) {
    let root = KeyPath::root();
    check_names(problems, &root.key("modes"), &c.modes, &MODES);
    check_names(
        problems,
        &root.key("optimizers"),
        &c.optimizers,
        &OPTIMIZERS,
    );
    if c.seeds.is_empty() {
        problems.add(&root.key("seeds"), "expected at least one seed");
    }
    for (i, s) in c.seeds.iter().enumerate() {
        if c.seeds[..i].contains(s) {
            problems.add(
                &root.key("seeds").index(i),
                format!("seed {s} is listed twice"),
            );
        }
    }
    let model = match resolve(&mut c.model) {
        Ok(()) => model_config(c),
        Err(e) => {
            problems.add(&root.key("model").key("checkpoint"), e);
            None
        }
    };
    let max_seq_len = model.as_ref().map(|m| m.max_seq_len);
    if let Some(m) = &model {
        check_groups(c, m, problems);
    }
    check_data(c, problems);
    check_quant(c, problems);
    check_budget(problems, &root.key("train"), &c.train, max_seq_len);
    if c.modes.iter().any(|m| m.starts_with("scratch")) {
        let scratch = c.budget("scratch_fp");
        if scratch != c.train {
            check_budget(problems, &root.key("scratch"), &scratch, max_seq_len);
        }
    }
    for name in c.optimizers.clone() {
        let path = root.key("lr").key(&name);
        let lrs = c.lrs(&name);
        if lrs.is_empty() {
            problems.add(
                &path,
                "expected the learning rates to sweep (at least 4 for a fair comparison)",
            );
        }
        for (i, lr) in lrs.iter().enumerate() {
            if !(lr.is_finite() && *lr > 0.0) {
                problems.add(&path.index(i), "expected a positive learning rate");
            } else if i > 0 && *lr <= lrs[i - 1] {
                problems.add(&path.index(i), "expected increasing learning rates");
            }
        }
    }
    let m = root.key("muon");
    if !["adam_rms", "shape"].contains(&c.muon.scale.as_str()) {
        problems.add(&m.key("scale"), "expected `adam_rms` or `shape`");
    }
    if !(0.0..1.0).contains(&c.muon.momentum) {
        problems.add(&m.key("momentum"), "expected a momentum in [0, 1)");
    }
    if !(1..=10).contains(&c.muon.ns_steps) {
        problems.add(&m.key("ns_steps"), "expected 1 to 10 Newton–Schulz steps");
    }
    if !(c.muon.adamw_lr_ratio.is_finite() && c.muon.adamw_lr_ratio > 0.0) {
        problems.add(&m.key("adamw_lr_ratio"), "expected a positive ratio");
    }
    let e = root.key("eval");
    check_names(problems, &e.key("rotations"), &c.eval.rotations, &SCHEMES);
    for (i, w) in c.eval.weights.iter().enumerate() {
        if let Err(msg) = crate::model::transforms::weight_variant(w) {
            problems.add(&e.key("weights").index(i), msg);
        }
    }
}

/// The checkpoint's architecture (None if unreadable: planning reports why).
fn model_config(c: &QatConfig) -> Option<ModelConfig> {
    let path = c.model.resolved_path.as_ref()?;
    let device = candle_core::Device::Cpu;
    Some(if path.is_dir() {
        crate::model::hf::load(path, &device).ok()?.0
    } else {
        crate::model::llama2c::load(path, &device).ok()?.0
    })
}

/// Group sizes must divide every quantized layer's input width.
fn check_groups(c: &QatConfig, m: &ModelConfig, problems: &mut Problems) {
    let widths = [m.dim, m.q_dim(), m.hidden_dim];
    let mut names = vec![(
        KeyPath::root().key("quant").key("weights"),
        c.quant.weights.clone(),
    )];
    for (i, w) in c.eval.weights.iter().enumerate() {
        names.push((
            KeyPath::root().key("eval").key("weights").index(i),
            w.clone(),
        ));
    }
    for (path, name) in names {
        let Ok(q) = parse_weight_quantizer(&name) else {
            continue;
        };
        if let Granularity::PerGroup(g) = q.granularity {
            if let Some(w) = widths.iter().find(|w| g == 0 || !w.is_multiple_of(g)) {
                problems.add(
                    &path,
                    format!(
                        "group of {g} does not divide the model's input width {w} \
                         (widths {widths:?}); use a divisor or per-channel `w<bits>`"
                    ),
                );
            }
        }
    }
}

fn check_data(c: &mut QatConfig, problems: &mut Problems) {
    let d = KeyPath::root().key("data");
    match c.data.source.as_str() {
        "text" => {
            match c.data.text.as_deref().map(resolve_checkpoint) {
                None => problems.add(
                    &d.key("text"),
                    "source = \"text\" needs `text`: a dataset name or a file",
                ),
                Some(Err(e)) => problems.add(&d.key("text"), e),
                Some(Ok(p)) => c.data.resolved_text = Some(p),
            }
            if !(c.data.valid_fraction > 0.0 && c.data.valid_fraction < 0.5) {
                problems.add(&d.key("valid_fraction"), "expected a fraction in (0, 0.5)");
            }
            if c.data.tokenizer.is_none() {
                if let Some(dir) = c.model.resolved_path.as_ref().filter(|p| p.is_dir()) {
                    c.data.tokenizer = Some(dir.join("tokenizer.json"));
                }
            }
            match &c.data.tokenizer {
                Some(t) if t.is_file() => {}
                Some(t) => problems.add(
                    &d.key("tokenizer"),
                    format!("no tokenizer at {}", t.display()),
                ),
                None => problems.add(
                    &d.key("tokenizer"),
                    "expected a tokenizer.json (the checkpoint is not a folder holding one); \
                     or use source = \"sampled\"",
                ),
            }
        }
        "sampled" => {
            for (key, n) in [
                ("sequences", c.data.sequences),
                ("valid_sequences", c.data.valid_sequences),
            ] {
                if n == 0 {
                    problems.add(&d.key(key), "expected at least one sequence");
                }
            }
            if c.data.length < 2 {
                problems.add(&d.key("length"), "expected at least 2 tokens per sequence");
            }
            if !(c.data.temperature.is_finite() && c.data.temperature > 0.0) {
                problems.add(&d.key("temperature"), "expected a temperature > 0");
            }
            if c.data.text.is_some() {
                problems.add(&d.key("text"), "applies only with source = \"text\"");
            }
            // One validation window per sampled sequence, its first context + 1 tokens.
            if c.data.final_windows > c.data.valid_sequences {
                problems.add(
                    &d.key("final_windows"),
                    format!(
                        "sampled data gives one window per validation sequence; expected at most valid_sequences = {}",
                        c.data.valid_sequences
                    ),
                );
            }
            if c.data.length <= c.train.context {
                problems.add(
                    &d.key("length"),
                    format!(
                        "expected more than train.context = {} tokens (windows are sequence prefixes of context + 1)",
                        c.train.context
                    ),
                );
            }
        }
        other => problems.add(
            &d.key("source"),
            format!("unknown source `{other}`; expected text or sampled"),
        ),
    }
    let (ew, fw, sw) = (
        c.data.eval_windows,
        c.data.final_windows,
        c.data.stats_windows,
    );
    if ew == 0 || fw == 0 || sw == 0 {
        problems.add(
            &d,
            "eval_windows, final_windows and stats_windows must be positive",
        );
    }
    if ew > fw {
        problems.add(
            &d.key("eval_windows"),
            format!("expected at most final_windows = {fw}"),
        );
    }
    if sw > ew {
        problems.add(
            &d.key("stats_windows"),
            format!("expected at most eval_windows = {ew}"),
        );
    }
}

fn check_quant(c: &QatConfig, problems: &mut Problems) {
    let q = KeyPath::root().key("quant");
    if let Err(e) = check_qat_weights(&c.quant.weights) {
        problems.add(&q.key("weights"), e);
    }
    let a = c.quant.activations;
    if !((4..=8).contains(&a) || a == 16) {
        problems.add(
            &q.key("activations"),
            "expected 4 to 8 bits per token, or 16 for none",
        );
    }
}

fn check_budget(problems: &mut Problems, path: &KeyPath, b: &Budget, max_seq_len: Option<usize>) {
    for (key, v) in [
        ("steps", b.steps),
        ("batch", b.batch),
        ("context", b.context),
        ("eval_every", b.eval_every),
        ("checkpoint_every", b.checkpoint_every),
    ] {
        if v == 0 {
            problems.add(&path.key(key), "expected a positive number");
        }
    }
    if let Some(max) = max_seq_len.filter(|m| b.context > *m) {
        problems.add(
            &path.key("context"),
            format!("the model's max_seq_len is {max}"),
        );
    }
    if b.warmup >= b.steps.max(1) {
        problems.add(
            &path.key("warmup"),
            "expected fewer warm-up steps than steps",
        );
    }
    if !(0.0..=1.0).contains(&b.min_lr_ratio) {
        problems.add(&path.key("min_lr_ratio"), "expected a ratio in [0, 1]");
    }
    if !(b.weight_decay >= 0.0 && b.weight_decay.is_finite()) {
        problems.add(&path.key("weight_decay"), "expected a weight decay ≥ 0");
    }
    if !(b.grad_clip >= 0.0 && b.grad_clip.is_finite()) {
        problems.add(&path.key("grad_clip"), "expected a clip ≥ 0 (0 = none)");
    }
}
