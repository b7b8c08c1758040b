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
        };
        let mut problems = Problems::new(doc);
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
