//! The speculation study's config: a target model, prompts, and the grid of
//! drafter × rule × temperature × filter × branches × tree shape × draft
//! length, plus an
//! optional sequence-level losslessness test.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};
use crate::model::transforms::weight_variant;
use crate::primitives::rotation::{by_name as rotation_by_name, SCHEMES};
use crate::speculative::decode::{SpecRule, DEFAULT_TREE_NODES, TYPICAL_DELTA, TYPICAL_EPSILON};
use crate::speculative::tree::Shape;
use crate::studies::eval::config::{resolve_checkpoint, EvalConfig, EvalData, ModelSource};

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
    /// target quantized, self-speculation), optionally after a whole-model
    /// rotation (`w4+hadamard`); `ngram<n>` (prompt lookup); or
    /// `model:<checkpoint>` (another model with the same tokenizer).
    pub drafters: Vec<String>,
    /// Acceptance rules: `standard`, `gumbel`, `naive`, `greedy`, `typical`,
    /// `specinfer`.
    pub rules: Vec<String>,
    /// Draft lengths γ.
    pub gammas: Vec<usize>,
    /// Sampling temperatures (0 = argmax).
    pub temperatures: Vec<f64>,
    /// top-k filters applied to p and q (0 = none).
    #[serde(default = "default_top_k")]
    pub top_k: Vec<usize>,
    /// top-p filters applied to p and q (1 = none).
    #[serde(default = "default_top_p")]
    pub top_p: Vec<f64>,
    /// Draft branches K (a tree branching at its root); rules that verify one
    /// branch only (`standard`, `greedy`, `typical`) run at K = 1 alone.
    #[serde(default = "default_branches")]
    pub branches: Vec<usize>,
    /// How K >= 2 branches are arranged: `chains` (K chains splitting at the
    /// root, a batch of K rows) and/or `full` (K children at every level, one
    /// row with a tree mask). A full tree with K = 1 is the chain, run under
    /// `full` only where `chains` is not listed.
    #[serde(default = "default_trees")]
    pub trees: Vec<String>,
    /// A full tree's node budget: K children per node while it allows, then
    /// the first-ranked path alone continues to depth γ.
    #[serde(default = "default_tree_nodes")]
    pub tree_nodes: usize,
    /// The typical rule's ε (Medusa's posterior_threshold).
    #[serde(default = "default_epsilon")]
    pub typical_epsilon: f64,
    /// The typical rule's δ (Medusa's posterior_alpha).
    #[serde(default = "default_delta")]
    pub typical_delta: f64,
    /// Prompt length in tokens.
    #[serde(default = "default_prompt_length")]
    pub prompt_length: usize,
    /// Tokens generated after each prompt.
    #[serde(default = "default_tokens")]
    pub tokens: usize,
    /// Cost of one drafter call relative to one target call, for the speedup model.
    #[serde(default = "default_costs")]
    pub cost_ratios: Vec<f64>,
    /// Time plain and speculative decoding (`speculation_timing`, the one
    /// table that differs between reruns).
    #[serde(default = "default_true")]
    pub timing: bool,
    /// The sequence-level losslessness test (`speculation_lossless`).
    #[serde(default)]
    pub lossless: Option<LosslessConfig>,
    /// Filled in when planning: each `model:` drafter's resolved checkpoint.
    #[serde(default)]
    pub resolved_drafters: Vec<(String, PathBuf)>,
}

/// Speculative decoding of a short horizon from one prompt, many seeds, against
/// the exact distribution of the target's continuations.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LosslessConfig {
    /// The drafter (any name `drafters` accepts).
    pub drafter: String,
    /// The rules tested (lossy ones serve as negative controls); plain
    /// sampling of the target is always tested beside them.
    pub rules: Vec<String>,
    /// Draft length.
    #[serde(default = "default_lossless_gamma")]
    pub gamma: usize,
    /// Branches for `gumbel`, `naive` and `specinfer` (others use 1).
    #[serde(default = "default_one")]
    pub branches: usize,
    /// `chains` or `full` (see `trees`).
    #[serde(default = "default_tree")]
    pub tree: String,
    /// Temperature.
    #[serde(default = "default_one_f")]
    pub temperature: f64,
    /// top-k of p and q (0 = none).
    #[serde(default)]
    pub top_k: usize,
    /// top-p of p and q (1 = none).
    #[serde(default = "default_one_f")]
    pub top_p: f64,
    /// Tokens generated per sample.
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// Seeds (samples) per rule; the same seeds for every rule.
    #[serde(default = "default_samples")]
    pub samples: u64,
}

fn default_top_k() -> Vec<usize> {
    vec![0]
}
fn default_top_p() -> Vec<f64> {
    vec![1.0]
}
fn default_branches() -> Vec<usize> {
    vec![1]
}
fn default_trees() -> Vec<String> {
    vec![default_tree()]
}
fn default_tree() -> String {
    Shape::Chains.name().into()
}
fn default_tree_nodes() -> usize {
    DEFAULT_TREE_NODES
}
fn default_epsilon() -> f64 {
    TYPICAL_EPSILON
}
fn default_delta() -> f64 {
    TYPICAL_DELTA
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
fn default_true() -> bool {
    true
}
fn default_lossless_gamma() -> usize {
    2
}
fn default_one() -> usize {
    1
}
fn default_one_f() -> f64 {
    1.0
}
fn default_horizon() -> usize {
    3
}
fn default_samples() -> u64 {
    2000
}

/// What a drafter name stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum DrafterSpec {
    /// The target, optionally rotated (a scheme of the rotation study), with
    /// its weights transformed (`w4`, `bf16`, `f32`...).
    Quantized {
        /// Weight variant.
        variant: String,
        /// Whole-model rotation scheme (`none` if absent).
        rotation: String,
    },
    /// Prompt lookup on the last n tokens.
    Ngram(usize),
    /// Another model (a checkpoint) with the target's tokenizer.
    Model(String),
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
        if let Some(path) = name.strip_prefix("model:") {
            if path.is_empty() {
                return Err(format!("`{name}`: expected model:<checkpoint>"));
            }
            return Ok(DrafterSpec::Model(path.into()));
        }
        let (variant, rotation) = match name.split_once('+') {
            Some((v, r)) => (v, r),
            None => (name, "none"),
        };
        if rotation_by_name(rotation, 0).is_none() {
            return Err(format!(
                "`{name}`: unknown rotation `{rotation}`; expected one of {}",
                SCHEMES.join(", ")
            ));
        }
        match weight_variant(variant) {
            Ok(_) => Ok(DrafterSpec::Quantized {
                variant: variant.into(),
                rotation: rotation.into(),
            }),
            Err(e) => Err(format!(
                "{e}; or <variant>+<rotation>, ngram<n> for prompt lookup, model:<checkpoint>"
            )),
        }
    }

    /// Bits per weight of a quantized self-drafter (32 for f32), if it is one.
    pub fn bits(&self) -> Option<u32> {
        match self {
            DrafterSpec::Quantized { variant, .. } => match variant.as_str() {
                "f32" => Some(32),
                "bf16" | "f16" => Some(16),
                v => v
                    .strip_prefix('w')
                    .map(|r| {
                        r.chars()
                            .take_while(|c| c.is_ascii_digit())
                            .collect::<String>()
                    })
                    .and_then(|d| d.parse().ok()),
            },
            _ => None,
        }
    }
}

impl SpeculationConfig {
    /// The model and prompts as an evaluation config.
    pub fn as_eval(&self) -> EvalConfig {
        EvalConfig::model_and_tokens(self.seed, &self.model, &self.data)
    }

    /// The resolved checkpoint of a `model:` drafter.
    pub fn drafter_path(&self, checkpoint: &str) -> Option<&PathBuf> {
        self.resolved_drafters
            .iter()
            .find(|(c, _)| c == checkpoint)
            .map(|(_, p)| p)
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
            ("top_k", config.top_k.is_empty()),
            ("top_p", config.top_p.is_empty()),
            ("branches", config.branches.is_empty()),
            ("trees", config.trees.is_empty()),
        ] {
            if empty {
                problems.add(&root.key(key), "expected a non-empty list");
            }
        }
        config.resolved_drafters.clear();
        let mut drafters: Vec<(KeyPath, String)> = config
            .drafters
            .iter()
            .enumerate()
            .map(|(i, d)| (root.key("drafters").index(i), d.clone()))
            .collect();
        if let Some(l) = &config.lossless {
            drafters.push((root.key("lossless").key("drafter"), l.drafter.clone()));
        }
        for (path, d) in drafters {
            match DrafterSpec::parse(&d) {
                Err(e) => problems.add(&path, e),
                Ok(DrafterSpec::Model(checkpoint)) => match resolve_checkpoint(&checkpoint) {
                    Ok(p) => {
                        if config.drafter_path(&checkpoint).is_none() {
                            config.resolved_drafters.push((checkpoint, p));
                        }
                    }
                    Err(e) => problems.add(&path, e),
                },
                Ok(_) => {}
            }
        }
        let rule_error = |r: &str| {
            format!(
                "unknown rule `{r}`; expected one of {}",
                SpecRule::ALL.map(|r| r.name()).join(", ")
            )
        };
        for (i, r) in config.rules.iter().enumerate() {
            if SpecRule::by_name(r).is_none() {
                problems.add(&root.key("rules").index(i), rule_error(r));
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
        for (i, &p) in config.top_p.iter().enumerate() {
            if !(p > 0.0 && p <= 1.0) {
                problems.add(
                    &root.key("top_p").index(i),
                    format!("{p}; expected 0 < top_p <= 1"),
                );
            }
        }
        for (i, &k) in config.branches.iter().enumerate() {
            if !(1..=8).contains(&k) {
                problems.add(
                    &root.key("branches").index(i),
                    format!("{k}; expected 1 to 8 branches"),
                );
            }
        }
        let shape_error = |t: &str| {
            format!(
                "unknown tree shape `{t}`; expected one of {}",
                Shape::ALL.map(|s| s.name()).join(", ")
            )
        };
        for (i, t) in config.trees.iter().enumerate() {
            if Shape::by_name(t).is_none() {
                problems.add(&root.key("trees").index(i), shape_error(t));
            }
        }
        if !(1..=1024).contains(&config.tree_nodes) {
            problems.add(
                &root.key("tree_nodes"),
                format!("{}; expected 1 to 1024 nodes", config.tree_nodes),
            );
        }
        for (key, v) in [
            ("typical_epsilon", config.typical_epsilon),
            ("typical_delta", config.typical_delta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.add(&root.key(key), format!("{v}; expected a number >= 0"));
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
        if let Some(l) = &config.lossless {
            let at = root.key("lossless");
            if l.rules.is_empty() {
                problems.add(&at.key("rules"), "expected a non-empty list");
            }
            for (i, r) in l.rules.iter().enumerate() {
                if SpecRule::by_name(r).is_none() {
                    problems.add(&at.key("rules").index(i), rule_error(r));
                }
            }
            if !(1..=6).contains(&l.horizon) {
                problems.add(
                    &at.key("horizon"),
                    format!("{}; expected 1 to 6", l.horizon),
                );
            }
            if l.samples < 100 {
                problems.add(
                    &at.key("samples"),
                    format!("{}; expected at least 100", l.samples),
                );
            }
            if l.gamma > 16 {
                problems.add(&at.key("gamma"), format!("{}; expected 0 to 16", l.gamma));
            }
            if !(1..=8).contains(&l.branches) {
                problems.add(
                    &at.key("branches"),
                    format!("{}; expected 1 to 8", l.branches),
                );
            }
            if Shape::by_name(&l.tree).is_none() {
                problems.add(&at.key("tree"), shape_error(&l.tree));
            }
            if !(l.temperature.is_finite() && l.temperature > 0.0) {
                problems.add(
                    &at.key("temperature"),
                    format!(
                        "{}; expected a temperature > 0 (at 0 every rule is deterministic)",
                        l.temperature
                    ),
                );
            }
            if !(l.top_p > 0.0 && l.top_p <= 1.0) {
                problems.add(
                    &at.key("top_p"),
                    format!("{}; expected 0 < top_p <= 1", l.top_p),
                );
            }
        }
        problems.finish(config)
    }
}
