//! The rotation study's config: a model, evaluation and calibration tokens, and
//! the grid of scheme × weight quantizer × activation bits × KV-cache bits.

use serde::{Deserialize, Serialize};

use super::methods::{WeightMethod, SCHEMES};
use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::studies::eval::config::{EvalConfig, EvalData, ModelSource};

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the tokens and the random rotations.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: ModelSource,
    /// Calibration tokens (as in the eval study).
    #[serde(default)]
    pub data: EvalData,
    /// Schemes: rotations (`none`, `hadamard`, `random_hadamard`,
    /// `random_orthogonal`) and the `smoothquant` scaling baseline.
    pub rotations: Vec<String>,
    /// Weight quantizers: `f32` (none) or `w<bits>[g<group>][a][mse][gptq]`.
    pub weights: Vec<String>,
    /// Activation bits per token (16 = not quantized).
    #[serde(default = "default_activation_bits")]
    pub activation_bits: Vec<u8>,
    /// Activation scales per `token` (dynamic, one per row) or per `tensor`
    /// (dynamic, one per call).
    #[serde(default = "default_granularity")]
    pub activation_granularity: String,
    /// Fraction of the absmax kept by the activation quantizer, in (0, 1].
    #[serde(default = "default_clip")]
    pub activation_clip_ratio: f64,
    /// KV-cache bits (16 = not quantized); whole-model only.
    #[serde(default = "default_kv_bits")]
    pub kv_bits: Vec<u8>,
    /// KV-cache group size along the head dimension (default: the whole head).
    #[serde(default)]
    pub kv_group: Option<usize>,
    /// SmoothQuant's migration strength.
    #[serde(default = "default_alpha")]
    pub smoothquant_alpha: f64,
    /// GPTQ's relative dampening of the Hessian diagonal.
    #[serde(default = "default_damp")]
    pub gptq_damp: f64,
    /// Calibration sequences (SmoothQuant scales, GPTQ Hessians), disjoint from
    /// the evaluation tokens.
    #[serde(default = "default_calibration")]
    pub calibration_sequences: usize,
    /// Also quantize the whole model and measure perplexity, KL and acceptance.
    #[serde(default = "default_true")]
    pub whole_model: bool,
}

fn default_granularity() -> String {
    "token".into()
}

fn default_clip() -> f64 {
    1.0
}

fn default_kv_bits() -> Vec<u8> {
    vec![16]
}

fn default_alpha() -> f64 {
    0.5
}

fn default_damp() -> f64 {
    0.01
}

fn default_calibration() -> usize {
    8
}

fn default_true() -> bool {
    true
}

fn default_activation_bits() -> Vec<u8> {
    vec![16, 8, 4]
}

impl RotationConfig {
    /// The model and tokens as an evaluation config.
    pub fn as_eval(&self) -> EvalConfig {
        EvalConfig::model_and_tokens(self.seed, &self.model, &self.data)
    }

    /// Parses and checks one point of a config.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: RotationConfig = doc.deserialize()?;
        let eval = EvalConfig::model_and_tokens_from_doc(doc)?;
        config.model = eval.model;
        config.data = eval.data;
        let root = KeyPath::root();
        let mut problems = Problems::new(doc);
        for (key, empty) in [
            ("rotations", config.rotations.is_empty()),
            ("weights", config.weights.is_empty()),
            ("activation_bits", config.activation_bits.is_empty()),
        ] {
            if empty {
                problems.add(&root.key(key), "expected a non-empty list");
            }
        }
        for (i, s) in config.rotations.iter().enumerate() {
            if !SCHEMES.contains(&s.as_str()) {
                problems.add(
                    &root.key("rotations").index(i),
                    format!(
                        "unknown rotation `{s}`; expected one of {}",
                        SCHEMES.join(", ")
                    ),
                );
            }
        }
        for (i, w) in config.weights.iter().enumerate() {
            if let Err(e) = WeightMethod::parse(w) {
                problems.add(&root.key("weights").index(i), e);
            }
        }
        for (i, &b) in config.kv_bits.iter().enumerate() {
            if !(b == 16 || (2..=8).contains(&b)) {
                problems.add(
                    &root.key("kv_bits").index(i),
                    format!("{b} bits; expected 2 to 8, or 16 for none"),
                );
            }
        }
        if !["token", "tensor"].contains(&config.activation_granularity.as_str()) {
            problems.add(
                &root.key("activation_granularity"),
                format!(
                    "`{}`; expected \"token\" or \"tensor\"",
                    config.activation_granularity
                ),
            );
        }
        if !(config.activation_clip_ratio > 0.0 && config.activation_clip_ratio <= 1.0) {
            problems.add(
                &root.key("activation_clip_ratio"),
                format!(
                    "{}; expected a ratio in (0, 1]",
                    config.activation_clip_ratio
                ),
            );
        }
        if config.kv_group == Some(0) {
            problems.add(&root.key("kv_group"), "expected a positive group size");
        }
        if !(0.0..=1.0).contains(&config.smoothquant_alpha) {
            problems.add(
                &root.key("smoothquant_alpha"),
                format!("{}; expected 0 to 1", config.smoothquant_alpha),
            );
        }
        if !(config.gptq_damp.is_finite() && config.gptq_damp >= 0.0) {
            problems.add(
                &root.key("gptq_damp"),
                format!("{}; expected a finite value >= 0", config.gptq_damp),
            );
        }
        if config.calibration_sequences == 0 {
            problems.add(
                &root.key("calibration_sequences"),
                "expected at least one sequence",
            );
        }
        if config.kv_bits.is_empty() {
            problems.add(&root.key("kv_bits"), "expected a non-empty list");
        }
        for (i, &b) in config.activation_bits.iter().enumerate() {
            if !(b == 16 || (4..=8).contains(&b)) {
                problems.add(
                    &root.key("activation_bits").index(i),
                    format!("{b} bits; expected 4 to 8, or 16 for none"),
                );
            }
        }
        problems.finish(config)
    }
}
