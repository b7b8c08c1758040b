//! The rotation study's config: a model, calibration tokens, and the grid of
//! rotation × weight quantizer × activation bits.

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::model::transforms::parse_weight_quantizer;
use crate::primitives::rotation::SCHEMES;
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
    /// Rotation schemes.
    pub rotations: Vec<String>,
    /// Weight quantizers, `w<bits>[g<group>][a][mse]`.
    pub weights: Vec<String>,
    /// Activation bits per token (16 = not quantized).
    #[serde(default = "default_activation_bits")]
    pub activation_bits: Vec<u8>,
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
        let mut eval_table = toml::Table::new();
        for key in ["seed", "model", "data"] {
            if let Some(v) = doc.table.get(key) {
                eval_table.insert(key.into(), v.clone());
            }
        }
        let eval = EvalConfig::from_doc(&PointDoc {
            source: doc.source,
            table: eval_table,
            overrides: doc.overrides.clone(),
        })?;
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
            if let Err(e) = parse_weight_quantizer(w) {
                problems.add(&root.key("weights").index(i), e);
            }
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
