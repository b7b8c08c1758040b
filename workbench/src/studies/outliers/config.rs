//! The outlier study's config: a model, its tokens (as in the eval study) and the
//! rotation schemes to compare.

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::primitives::rotation::Rotation;
use crate::studies::eval::config::{EvalConfig, EvalData, ModelSource};

pub use crate::primitives::rotation::SCHEMES;

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutliersConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the sampled tokens and of the random rotations.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: ModelSource,
    /// The tokens.
    #[serde(default)]
    pub data: EvalData,
    /// Rotations applied to every site's channels before measuring.
    #[serde(default = "default_schemes")]
    pub rotations: Vec<String>,
    /// Outlier criteria.
    #[serde(default)]
    pub criteria: Criteria,
}

/// Thresholds of the outlier criteria (`[criteria]` in a config).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// LLM.int8(): magnitude of an outlier value.
    #[serde(default = "int8_threshold")]
    pub int8_threshold: f64,
    /// LLM.int8(): share of a channel's values (tokens) at or above the threshold.
    #[serde(default = "int8_token_share")]
    pub int8_token_share: f64,
    /// LLM.int8(): share of the layers (of one site kind) where the channel
    /// qualifies, for it to be an outlier feature.
    #[serde(default = "int8_layer_share")]
    pub int8_layer_share: f64,
    /// Massive activations: smallest |x|.
    #[serde(default = "massive_threshold")]
    pub massive_threshold: f64,
    /// Massive activations: smallest |x| over the site's median |x|.
    #[serde(default = "massive_ratio")]
    pub massive_ratio: f64,
}

fn int8_threshold() -> f64 {
    6.0
}
fn int8_token_share() -> f64 {
    0.06
}
fn int8_layer_share() -> f64 {
    0.25
}
fn massive_threshold() -> f64 {
    100.0
}
fn massive_ratio() -> f64 {
    1000.0
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            int8_threshold: int8_threshold(),
            int8_token_share: int8_token_share(),
            int8_layer_share: int8_layer_share(),
            massive_threshold: massive_threshold(),
            massive_ratio: massive_ratio(),
        }
    }
}

fn default_schemes() -> Vec<String> {
    SCHEMES.iter().map(|s| s.to_string()).collect()
}

impl OutliersConfig {
    /// The rotation a validated scheme name stands for.
    pub fn rotation(&self, scheme: &str) -> Rotation {
        crate::primitives::rotation::by_name(scheme, self.seed).unwrap_or(Rotation::None)
    }

    /// The same model and tokens as an evaluation config (to share its loading
    /// and token sampling).
    pub fn as_eval(&self) -> EvalConfig {
        EvalConfig::model_and_tokens(self.seed, &self.model, &self.data)
    }

    /// Parses and checks one point of a config.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        // Model and data are checked exactly as the eval study checks them.
        let mut table = doc.table.clone();
        let rotations = table.remove("rotations");
        let description = table.remove("description");
        let criteria = table.remove("criteria");
        let eval_doc = PointDoc {
            source: doc.source,
            table,
            overrides: doc.overrides.clone(),
        };
        let eval = EvalConfig::from_doc(&eval_doc)?;
        let mut config = OutliersConfig {
            description: description.and_then(|d| d.as_str().map(str::to_string)),
            seed: eval.seed,
            model: eval.model,
            data: eval.data,
            rotations: default_schemes(),
            criteria: Criteria::default(),
        };
        let mut problems = Problems::new(doc);
        let at = KeyPath::root().key("criteria");
        if let Some(c) = criteria {
            match c.try_into::<Criteria>() {
                Ok(c) => config.criteria = c,
                Err(e) => problems.add(&at, e.message().to_string()),
            }
        }
        let c = &config.criteria;
        for (key, value, ok) in [
            ("int8_threshold", c.int8_threshold, c.int8_threshold > 0.0),
            (
                "int8_token_share",
                c.int8_token_share,
                (0.0..=1.0).contains(&c.int8_token_share),
            ),
            (
                "int8_layer_share",
                c.int8_layer_share,
                (0.0..=1.0).contains(&c.int8_layer_share),
            ),
            (
                "massive_threshold",
                c.massive_threshold,
                c.massive_threshold > 0.0,
            ),
            ("massive_ratio", c.massive_ratio, c.massive_ratio >= 1.0),
        ] {
            if !ok || !value.is_finite() {
                let expected = match key {
                    "int8_token_share" | "int8_layer_share" => "a share from 0 to 1",
                    "massive_ratio" => "a ratio of at least 1",
                    _ => "a positive magnitude",
                };
                problems.add(&at.key(key), format!("{value}; expected {expected}"));
            }
        }
        if let Some(r) = rotations {
            match r.try_into::<Vec<String>>() {
                Ok(list) => config.rotations = list,
                Err(_) => problems.add(
                    &KeyPath::root().key("rotations"),
                    "expected a list of scheme names",
                ),
            }
        }
        if config.rotations.is_empty() {
            problems.add(
                &KeyPath::root().key("rotations"),
                "expected a non-empty list",
            );
        }
        for (i, s) in config.rotations.iter().enumerate() {
            if !SCHEMES.contains(&s.as_str()) {
                problems.add(
                    &KeyPath::root().key("rotations").index(i),
                    format!(
                        "unknown rotation `{s}`; expected one of {}",
                        SCHEMES.join(", ")
                    ),
                );
            }
        }
        problems.finish(config)
    }
}
