//! The speculation study's config: a target model, prompts, and the grid of
//! drafter × rule × temperature × draft length.

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::model::transforms::weight_variant;
use crate::speculative::decode::SpecRule;
use crate::studies::eval::config::{EvalConfig, EvalData, ModelSource};

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpeculationConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the prompts and of every keyed draw.
    #[serde(default)]
    pub seed: u64,
    /// The target model.
    pub model: ModelSource,
    /// Where prompts come from: the first `prompt_length` tokens of each
    /// evaluation sequence (as in the eval study).
    #[serde(default)]
    pub data: EvalData,
    /// Drafters: a weight variant of the target (`w8`, `w4g32`, `bf16`...: the
    /// target quantized, self-speculation) or `ngram<n>` (prompt lookup).
    pub drafters: Vec<String>,
    /// Acceptance rules: `standard`, `gumbel`, `naive`, `greedy`.
    pub rules: Vec<String>,
    /// Draft lengths γ.
    pub gammas: Vec<usize>,
    /// Sampling temperatures (0 = argmax).
    pub temperatures: Vec<f64>,
    /// Prompt length in tokens.
    #[serde(default = "default_prompt_length")]
    pub prompt_length: usize,
    /// Tokens generated after each prompt.
    #[serde(default = "default_tokens")]
    pub tokens: usize,
    /// Cost of one drafter call relative to one target call, for the speedup model.
    #[serde(default = "default_costs")]
    pub cost_ratios: Vec<f64>,
}

fn default_prompt_length() -> usize {
    8
}
fn default_tokens() -> usize {
    48
}
fn default_costs() -> Vec<f64> {
    vec![0.05, 0.2]
}

/// What a drafter name stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum DrafterSpec {
    /// The target with its weights transformed (`w4`, `bf16`, ...).
    Quantized(String),
    /// Prompt lookup on the last n tokens.
    Ngram(usize),
}

impl DrafterSpec {
    /// Parses a drafter name.
    pub fn parse(name: &str) -> Result<DrafterSpec, String> {
        if let Some(n) = name.strip_prefix("ngram") {
            return match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(DrafterSpec::Ngram(n)),
                _ => Err(format!("`{name}`: expected ngram<n> with n >= 1")),
            };
        }
        match weight_variant(name) {
            Ok(Some(_)) => Ok(DrafterSpec::Quantized(name.into())),
            Ok(None) => Ok(DrafterSpec::Quantized(name.into())),
            Err(e) => Err(format!("{e}; or ngram<n> for prompt lookup")),
        }
    }
}

impl SpeculationConfig {
    /// The model and prompts as an evaluation config.
    pub fn as_eval(&self) -> EvalConfig {
        EvalConfig::model_and_tokens(self.seed, &self.model, &self.data)
    }

    /// Parses and checks one point of a config.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: SpeculationConfig = doc.deserialize()?;
        let eval = EvalConfig::model_and_tokens_from_doc(doc)?;
        config.model = eval.model;
        config.data = eval.data;
        let root = KeyPath::root();
        let mut problems = Problems::new(doc);
        for (key, empty) in [
            ("drafters", config.drafters.is_empty()),
            ("rules", config.rules.is_empty()),
            ("gammas", config.gammas.is_empty()),
            ("temperatures", config.temperatures.is_empty()),
        ] {
            if empty {
                problems.add(&root.key(key), "expected a non-empty list");
            }
        }
        for (i, d) in config.drafters.iter().enumerate() {
            if let Err(e) = DrafterSpec::parse(d) {
                problems.add(&root.key("drafters").index(i), e);
            }
        }
        for (i, r) in config.rules.iter().enumerate() {
            if SpecRule::by_name(r).is_none() {
                problems.add(
                    &root.key("rules").index(i),
                    format!("unknown rule `{r}`; expected standard, gumbel, naive or greedy"),
                );
            }
        }
        for (i, &g) in config.gammas.iter().enumerate() {
            if g > 16 {
                problems.add(
                    &root.key("gammas").index(i),
                    format!("{g}; expected 0 to 16"),
                );
            }
        }
        for (i, &t) in config.temperatures.iter().enumerate() {
            if !(t.is_finite() && t >= 0.0) {
                problems.add(
                    &root.key("temperatures").index(i),
                    format!("{t}; expected a temperature >= 0"),
                );
            }
        }
        for (i, &c) in config.cost_ratios.iter().enumerate() {
            if !(c.is_finite() && c >= 0.0) {
                problems.add(
                    &root.key("cost_ratios").index(i),
                    format!("{c}; expected a cost ratio >= 0"),
                );
            }
        }
        if config.prompt_length == 0 || config.prompt_length >= config.data.length {
            problems.add(
                &root.key("prompt_length"),
                format!(
                    "{}; expected at least 1 and less than data.length = {}",
                    config.prompt_length, config.data.length
                ),
            );
        }
        if config.tokens == 0 {
            problems.add(&root.key("tokens"), "expected at least one token");
        }
        problems.finish(config)
    }
}
