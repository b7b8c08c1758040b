//! The evaluation study's config.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data;
use crate::experiment::config::{ConfigErrors, KeyPath};
use crate::experiment::study::{PointDoc, Problems};

/// The default weight variants (any name `weight_variant` accepts works).
pub const WEIGHT_VARIANTS: [&str; 3] = ["f32", "bf16", "f16"];

/// The config as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Free text shown at the top of the report.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of the sampled evaluation sequences.
    #[serde(default)]
    pub seed: u64,
    /// The model (also the full-precision reference).
    pub model: ModelSource,
    /// The evaluation tokens.
    #[serde(default)]
    pub data: EvalData,
    /// Weight variants: each linear layer's weight rounded to this type.
    #[serde(default = "default_weights")]
    pub weights: Vec<String>,
    /// Whole-model rotations (QuaRot-style) applied before the weight variant;
    /// every rotation × weight variant is evaluated.
    #[serde(default = "default_rotations")]
    pub rotations: Vec<String>,
}

fn default_rotations() -> Vec<String> {
    vec!["none".into()]
}

/// Where the model comes from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// A dataset name from `workbench data list` (fetched into the cache), or a
    /// path: a llama2.c `.bin` file or a Hugging Face folder.
    pub checkpoint: String,
    /// Filled in when planning: the file or folder used.
    #[serde(default)]
    pub resolved_path: Option<PathBuf>,
    /// Filled in when planning: sha256 of the checkpoint's files.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The evaluation tokens: sequences sampled from the full-precision model
/// (`source = "sampled"`, for models whose tokenizer is unavailable, such as
/// stories260K; cross-entropy minus the reference's on them estimates the KL
/// computed exactly beside it), or consecutive windows of a text encoded with
/// the model's tokenizer (`source = "text"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalData {
    /// `sampled` or `text`.
    #[serde(default = "default_source")]
    pub source: String,
    /// The text (`source = "text"`): a dataset of `workbench data list` or a file.
    #[serde(default)]
    pub text: Option<String>,
    /// Evaluate only the last `valid_fraction` of the text (the held-out part of a
    /// training recipe with the same fraction).
    #[serde(default)]
    pub valid_fraction: Option<f64>,
    /// tokenizer.json (default: the one in the checkpoint's folder).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Filled in when planning: the text file used.
    #[serde(default)]
    pub resolved_text: Option<PathBuf>,
    /// Number of sequences.
    #[serde(default = "default_sequences")]
    pub sequences: usize,
    /// Tokens per sequence, BOS included (the context length of the table).
    #[serde(default = "default_length")]
    pub length: usize,
    /// Sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

impl Default for EvalData {
    fn default() -> Self {
        EvalData {
            source: default_source(),
            text: None,
            valid_fraction: None,
            tokenizer: None,
            resolved_text: None,
            sequences: default_sequences(),
            length: default_length(),
            temperature: default_temperature(),
        }
    }
}

fn default_weights() -> Vec<String> {
    WEIGHT_VARIANTS.iter().map(|s| s.to_string()).collect()
}
fn default_source() -> String {
    "sampled".into()
}
fn default_sequences() -> usize {
    16
}
fn default_length() -> usize {
    128
}
fn default_temperature() -> f64 {
    1.0
}

/// The checkpoint a `checkpoint` value names: a cached dataset, or a path
/// relative to the current folder.
pub fn resolve_checkpoint(checkpoint: &str) -> Result<PathBuf, String> {
    let manifest = data::Manifest::embedded();
    if manifest.find(checkpoint).is_ok() {
        return data::locate(&manifest, checkpoint, &data::FetchOptions::default())
            .map_err(|e| format!("{e:#}"));
    }
    let path = Path::new(checkpoint);
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "`{checkpoint}` is neither a dataset of `workbench data list` nor an existing path"
        ))
    }
}

impl EvalConfig {
    /// An f32, unrotated evaluation of `model` on `data`: how the other model
    /// studies load a model and get their tokens exactly as this study does.
    pub fn model_and_tokens(seed: u64, model: &ModelSource, data: &EvalData) -> EvalConfig {
        EvalConfig {
            description: None,
            seed,
            model: model.clone(),
            data: data.clone(),
            weights: vec!["f32".into()],
            rotations: vec!["none".into()],
        }
    }

    /// The `seed`, `model` and `data` keys of another study's config, checked
    /// (and the checkpoint resolved) exactly as this study checks them.
    pub fn model_and_tokens_from_doc(doc: &PointDoc) -> Result<EvalConfig, ConfigErrors> {
        let mut table = toml::Table::new();
        for key in ["seed", "model", "data"] {
            if let Some(v) = doc.table.get(key) {
                table.insert(key.into(), v.clone());
            }
        }
        EvalConfig::from_doc(&PointDoc {
            source: doc.source,
            table,
            overrides: doc.overrides.clone(),
        })
    }

    /// Parses and checks one point of a config, resolving the checkpoint.
    pub fn from_doc(doc: &PointDoc) -> Result<Self, ConfigErrors> {
        let mut config: EvalConfig = doc.deserialize()?;
        let root = KeyPath::root();
        let mut problems = Problems::new(doc);
        match resolve_checkpoint(&config.model.checkpoint) {
            Ok(path) => config.model.resolved_path = Some(path),
            Err(message) => problems.add(&root.key("model").key("checkpoint"), message),
        }
        let data = root.key("data");
        match config.data.source.as_str() {
            "sampled" => {
                for (key, present) in [
                    ("text", config.data.text.is_some()),
                    ("valid_fraction", config.data.valid_fraction.is_some()),
                    ("tokenizer", config.data.tokenizer.is_some()),
                ] {
                    if present {
                        problems.add(&data.key(key), "applies only with source = \"text\"");
                    }
                }
            }
            "text" => {
                match config.data.text.as_deref().map(resolve_checkpoint) {
                    None => problems.add(
                        &data.key("text"),
                        "source = \"text\" needs `text`: a dataset name or a file",
                    ),
                    Some(Err(e)) => problems.add(&data.key("text"), e),
                    Some(Ok(p)) => config.data.resolved_text = Some(p),
                }
                if let Some(f) = config.data.valid_fraction {
                    if !(f > 0.0 && f < 1.0) {
                        problems.add(&data.key("valid_fraction"), "expected a fraction in (0, 1)");
                    }
                }
                if config.data.tokenizer.is_none() {
                    if let Some(dir) = config.model.resolved_path.as_ref().filter(|p| p.is_dir()) {
                        config.data.tokenizer = Some(dir.join("tokenizer.json"));
                    }
                }
                match &config.data.tokenizer {
                    Some(t) if t.is_file() => {}
                    Some(t) => problems.add(
                        &data.key("tokenizer"),
                        format!("no tokenizer at {}", t.display()),
                    ),
                    None => problems.add(
                        &data.key("tokenizer"),
                        "expected a tokenizer.json (the checkpoint is not a folder holding one)",
                    ),
                }
            }
            other => problems.add(
                &data.key("source"),
                format!("unknown source `{other}`; expected sampled or text"),
            ),
        }
        if config.data.sequences == 0 {
            problems.add(
                &root.key("data").key("sequences"),
                "expected at least one sequence",
            );
        }
        if config.data.length < 2 {
            problems.add(
                &root.key("data").key("length"),
                "expected at least 2 tokens per sequence",
            );
        }
        if !(config.data.temperature.is_finite() && config.data.temperature > 0.0) {
            problems.add(
                &root.key("data").key("temperature"),
                "expected a temperature > 0",
            );
        }
        if config.weights.is_empty() {
            problems.add(&root.key("weights"), "expected a non-empty list");
        }
        for (i, r) in config.rotations.iter().enumerate() {
            if crate::primitives::rotation::by_name(r, 0).is_none() {
                problems.add(
                    &root.key("rotations").index(i),
                    format!(
                        "unknown rotation `{r}`; expected one of {}",
                        crate::primitives::rotation::SCHEMES.join(", ")
                    ),
                );
            }
        }
        if config.rotations.is_empty() {
            problems.add(&root.key("rotations"), "expected a non-empty list");
        }
        for (i, w) in config.weights.iter().enumerate() {
            if let Err(e) = crate::model::transforms::weight_variant(w) {
                problems.add(&root.key("weights").index(i), e);
            }
        }
        problems.finish(config)
    }
}
