//! The training recipe's config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::distill::DistillConfig;
use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::model::config::{ModelConfig, RopeStyle};
use crate::studies::eval::config::resolve_checkpoint;
use crate::train::trainer::TrainSpec;

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the initial weights and of the batch order.
    #[serde(default)]
    pub seed: u64,
    /// Folder the trained model is written to, in Hugging Face layout with its
    /// tokenizer.json (relative to the current folder).
    pub output: PathBuf,
    /// The text.
    pub data: TrainData,
    /// The architecture.
    pub model: ModelShape,
    /// The optimisation.
    pub optimizer: OptimizerConfig,
}

/// Text and tokenizer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainData {
    /// A dataset of `workbench data list` or a text file.
    pub train: String,
    /// Validation text; without it, the last `valid_fraction` of `train`.
    #[serde(default)]
    pub valid: Option<String>,
    /// Share of `train` held out when `valid` is absent.
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    /// Byte-level BPE vocabulary trained on the training text.
    pub vocab_size: usize,
    /// Validation windows evaluated (of `optimizer.context` tokens each).
    #[serde(default = "default_eval_windows")]
    pub eval_windows: usize,
    /// Train on a teacher's samples instead of the text (the text still
    /// supplies the prompts, the validation windows and, through the
    /// teacher, the tokenizer).
    #[serde(default)]
    pub distill: Option<DistillConfig>,
    /// Filled in when planning: the files used.
    #[serde(default)]
    pub resolved: Option<(PathBuf, Option<PathBuf>)>,
}

/// Decoder dimensions (Llama-style, half-split RoPE, saved as Hugging Face).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Residual width.
    pub dim: usize,
    /// MLP width.
    pub hidden_dim: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Output head shares the embedding.
    #[serde(default = "yes")]
    pub tied_embeddings: bool,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Qwen3-style q/k norm.
    #[serde(default)]
    pub qk_norm: bool,
}

/// Optimisation settings (see [`TrainSpec`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub context: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate (default lr / 10).
    #[serde(default)]
    pub min_lr: Option<f64>,
    /// Warm-up steps.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    /// Evaluate every this many steps.
    #[serde(default = "default_every")]
    pub eval_every: usize,
    /// Checkpoint every this many steps.
    #[serde(default = "default_every")]
    pub checkpoint_every: usize,
}

fn default_valid_fraction() -> f64 {
    0.1
}
fn default_eval_windows() -> usize {
    64
}
fn yes() -> bool {
    true
}
fn default_theta() -> f64 {
    10000.0
}
fn default_warmup() -> usize {
    100
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_clip() -> f64 {
    1.0
}
fn default_every() -> usize {
    100
}

impl TrainConfig {
    /// The decoder's architecture (vocabulary from the config).
    pub fn model_config(&self) -> ModelConfig {
        let m = &self.model;
        ModelConfig {
            dim: m.dim,
            hidden_dim: m.hidden_dim,
            n_layers: m.n_layers,
            n_heads: m.n_heads,
            n_kv_heads: m.n_kv_heads,
            head_dim: m.dim / m.n_heads.max(1),
            vocab_size: self.data.vocab_size,
            max_seq_len: self.optimizer.context,
            rope_theta: m.rope_theta,
            rope_style: RopeStyle::HalfSplit,
            norm_eps: 1e-5,
            tied_embeddings: m.tied_embeddings,
            qk_norm: m.qk_norm,
            attention_bias: false,
        }
    }

    /// The training spec.
    pub fn spec(&self) -> TrainSpec {
        let o = &self.optimizer;
        TrainSpec {
            steps: o.steps,
            batch: o.batch,
            context: o.context,
            lr: o.lr,
            min_lr: o.min_lr.unwrap_or(o.lr / 10.0),
            warmup: o.warmup,
            weight_decay: o.weight_decay,
            grad_clip: o.grad_clip,
            eval_every: o.eval_every,
            checkpoint_every: o.checkpoint_every,
            seed: self.seed,
        }
    }

    /// Parses and checks one point of a config, resolving the data files.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: TrainConfig = doc.deserialize()?;
        let root = KeyPath::root();
        let mut problems = Problems::new(doc);
        let data = root.key("data");
        let train = resolve_checkpoint(&config.data.train);
        let valid = config.data.valid.as_deref().map(resolve_checkpoint);
        match (&train, &valid) {
            (Ok(t), None) => config.data.resolved = Some((t.clone(), None)),
            (Ok(t), Some(Ok(v))) => config.data.resolved = Some((t.clone(), Some(v.clone()))),
            _ => {}
        }
        if let Err(e) = train {
            problems.add(&data.key("train"), e);
        }
        if let Some(Err(e)) = valid {
            problems.add(&data.key("valid"), e);
        }
        if !(config.data.valid_fraction > 0.0 && config.data.valid_fraction < 0.5) {
            problems.add(
                &data.key("valid_fraction"),
                "expected a fraction in (0, 0.5)",
            );
        }
        if config.data.vocab_size < 260 || config.data.vocab_size > 65536 {
            problems.add(
                &data.key("vocab_size"),
                "expected 260 to 65536 (byte-level BPE needs the 256 bytes and specials)",
            );
        }
        if let Some(d) = &config.data.distill {
            validate_distill(d, &config, &data.key("distill"), &mut problems);
        }
        if config.data.eval_windows == 0 {
            problems.add(&data.key("eval_windows"), "expected at least one window");
        }
        let m = root.key("model");
        for (key, v) in [
            ("dim", config.model.dim),
            ("hidden_dim", config.model.hidden_dim),
            ("n_layers", config.model.n_layers),
            ("n_heads", config.model.n_heads),
            ("n_kv_heads", config.model.n_kv_heads),
        ] {
            if v == 0 {
                problems.add(&m.key(key), "expected a positive size");
            }
        }
        if config.model.n_heads > 0 && !config.model.dim.is_multiple_of(config.model.n_heads) {
            problems.add(&m.key("n_heads"), "dim must be a multiple of n_heads");
        } else if let Err(e) = config.model_config().validate() {
            problems.add(&m, e);
        }
        let o = root.key("optimizer");
        for (key, v) in [
            ("steps", config.optimizer.steps),
            ("batch", config.optimizer.batch),
            ("context", config.optimizer.context),
            ("eval_every", config.optimizer.eval_every),
            ("checkpoint_every", config.optimizer.checkpoint_every),
        ] {
            if v == 0 {
                problems.add(&o.key(key), "expected a positive number");
            }
        }
        if !(config.optimizer.lr > 0.0 && config.optimizer.lr.is_finite()) {
            problems.add(&o.key("lr"), "expected a positive learning rate");
        }
        problems.finish(config)
    }
}

impl TrainConfig {
    /// Tokens per distilled sample (prompt included).
    pub fn distill_length(&self) -> Option<usize> {
        let d = self.data.distill.as_ref()?;
        Some(d.length.unwrap_or(self.optimizer.context + 1))
    }
}

/// Checks `[data.distill]`: a teacher folder with a tokenizer of
/// `data.vocab_size` entries, and samples the teacher can produce.
fn validate_distill(
    d: &DistillConfig,
    config: &TrainConfig,
    at: &KeyPath,
    problems: &mut Problems,
) {
    let dir = std::path::Path::new(&d.teacher);
    match crate::text::TextTokenizer::load(&dir.join("tokenizer.json")) {
        Err(e) => problems.add(
            &at.key("teacher"),
            format!("{e:#}; expected a trained model folder with tokenizer.json"),
        ),
        Ok(t) if t.vocab_size() != config.data.vocab_size => problems.add(
            &at.key("teacher"),
            format!(
                "the teacher's tokenizer has {} entries but data.vocab_size is {}; the two must agree",
                t.vocab_size(),
                config.data.vocab_size
            ),
        ),
        Ok(_) => {}
    }
    let length = config.distill_length().unwrap_or(0);
    if let Ok(teacher) = crate::model::hf::read_config(dir) {
        if length > teacher.max_seq_len {
            problems.add(
                &at.key("length"),
                format!(
                    "{length} tokens per sample exceed the teacher's max_seq_len {} (set length, or lower optimizer.context)",
                    teacher.max_seq_len
                ),
            );
        }
    }
    if d.sequences == 0 {
        problems.add(&at.key("sequences"), "expected at least one sample");
    }
    if d.prompt == 0 || d.prompt >= length {
        problems.add(
            &at.key("prompt"),
            format!(
                "{}; expected 1 to {} (fewer than the sample length)",
                d.prompt,
                length.saturating_sub(1)
            ),
        );
    }
    if !(d.temperature.is_finite() && d.temperature >= 1e-3) {
        problems.add(
            &at.key("temperature"),
            format!(
                "{}; expected a temperature of at least 0.001",
                d.temperature
            ),
        );
    }
    if d.sequences.saturating_mul(length) <= config.optimizer.context {
        problems.add(
            &at.key("sequences"),
            "the samples hold fewer tokens than one training window",
        );
    }
}
