//! The training recipe's single unit: tokenizer, data, training, saved model.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use std::path::Path;

use super::config::TrainConfig;
use super::distill;
use crate::experiment::outputs::{Column, Table};
use crate::experiment::study::{Plan, UnitContext, UnitOutput};
use crate::model::hf;
use crate::text::{eval_windows, split_text, BatchSampler, TextTokenizer};
use crate::train::trainer::{train, LogRow};

/// What the training unit reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainResult {
    /// Trainable parameters.
    pub parameters: usize,
    /// Tokens in the training and validation streams.
    pub train_tokens: usize,
    /// Validation tokens.
    pub valid_tokens: usize,
    /// Training text bytes per token (tokenizer compression).
    pub bytes_per_token: f64,
    /// Every step's log.
    pub history: Vec<LogRow>,
    /// Step the final run resumed from.
    pub resumed_from: usize,
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Where the model was written.
    pub output: String,
    /// What the model was trained on: `text`, or `distilled from <teacher>`.
    #[serde(default)]
    pub source: Option<String>,
    /// sha256 of the teacher's weights, when distilled.
    #[serde(default)]
    pub teacher_sha256: Option<String>,
    /// Seconds the teacher's sampling took, when the corpus was made (a
    /// rerun that reuses the cached corpus reports the same).
    #[serde(default)]
    pub sampling_seconds: Option<f64>,
}

/// The validated recipe.
pub struct TrainPlan {
    config: TrainConfig,
}

impl TrainPlan {
    /// Plans a validated config.
    pub fn new(config: TrainConfig) -> Self {
        TrainPlan { config }
    }
}

impl Plan for TrainPlan {
    fn resolved(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn units(&self) -> Vec<String> {
        vec![format!("train {}", self.config.output.display())]
    }

    fn run_unit(&self, _index: usize, context: &UnitContext) -> Result<UnitOutput> {
        let c = &self.config;
        let (train_path, valid_path) = c.data.resolved.clone().context("unresolved data")?;
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        let train_text = read(&train_path)?;
        let valid_text;
        let (train_part, valid_part) = match &valid_path {
            Some(v) => {
                valid_text = read(v)?;
                (train_text.as_str(), valid_text.as_str())
            }
            None => split_text(&train_text, c.data.valid_fraction),
        };
        // A distilled model adopts its teacher's tokenizer (a drafter must
        // share it); otherwise one is trained on the training text.
        let tokenizer = match &c.data.distill {
            Some(d) => TextTokenizer::load(&Path::new(&d.teacher).join("tokenizer.json"))?,
            None => TextTokenizer::train_bpe(train_part, c.data.vocab_size)?,
        };
        let text_tokens = tokenizer.encode(train_part)?;
        let valid_tokens = tokenizer.encode(valid_part)?;
        let bytes_per_token = train_part.len() as f64 / text_tokens.len().max(1) as f64;
        let (train_tokens, source, teacher_sha256, sampling_seconds) = match &c.data.distill {
            None => (text_tokens, "text".to_string(), None, None),
            Some(d) => {
                let length = c.distill_length().expect("distilling");
                let cache = context.work_dir.join("distilled.json");
                let corpus = distill::corpus(
                    Path::new(&d.teacher),
                    d,
                    length,
                    &text_tokens,
                    c.seed,
                    &cache,
                )?;
                (
                    corpus.stream(),
                    format!("distilled from {}", d.teacher),
                    Some(corpus.teacher_sha256.clone()),
                    Some(corpus.seconds),
                )
            }
        };
        let spec = c.spec();
        let sampler = BatchSampler::new(train_tokens.clone(), spec.context, spec.batch, c.seed)?;
        let mut windows = eval_windows(&valid_tokens, spec.context);
        windows.truncate(c.data.eval_windows);
        let mut model_config = c.model_config();
        model_config.vocab_size = tokenizer.vocab_size();
        let trained = train(
            &model_config,
            &spec,
            &|step| sampler.batch(step),
            &windows,
            &context.work_dir,
            &[("tokenizer.json".into(), tokenizer.to_json()?.into_bytes())],
            context.verbose,
        )?;
        // Written next to the target, then renamed: a half-written model never
        // sits at `output`.
        let output = &c.output;
        let staging = output.with_extension("partial");
        let _ = std::fs::remove_dir_all(&staging);
        hf::save(&trained.model, &staging)?;
        tokenizer.save(&staging.join("tokenizer.json"))?;
        if output.exists() {
            std::fs::remove_dir_all(output)
                .with_context(|| format!("replacing {}", output.display()))?;
        }
        std::fs::rename(&staging, output)
            .with_context(|| format!("writing {}", output.display()))?;
        let parameters = crate::train::init::tensor_shapes(&model_config)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        Ok(serde_json::to_value(TrainResult {
            parameters,
            train_tokens: train_tokens.len(),
            valid_tokens: valid_tokens.len(),
            bytes_per_token,
            history: trained.history,
            resumed_from: trained.resumed_from,
            tokens_per_second: trained.tokens_per_second,
            output: output.display().to_string(),
            source: Some(source),
            teacher_sha256,
            sampling_seconds,
        })?)
    }

    fn tables(&self, outputs: &[UnitOutput]) -> Result<Vec<Table>> {
        let r: TrainResult = serde_json::from_value(outputs[0].clone())?;
        let h = &r.history;
        let curve = Table::new("loss_curve")
            .with(
                "step",
                Column::I64(h.iter().map(|x| Some(x.step as i64)).collect()),
            )
            .with("lr", Column::F64(h.iter().map(|x| Some(x.lr)).collect()))
            .with(
                "train_loss",
                Column::F64(h.iter().map(|x| Some(x.train_loss)).collect()),
            )
            .with(
                "grad_norm",
                Column::F64(h.iter().map(|x| Some(x.grad_norm)).collect()),
            )
            .with(
                "valid_loss",
                Column::F64(h.iter().map(|x| x.valid_loss).collect()),
            );
        let last_valid = h.iter().rev().find_map(|x| x.valid_loss);
        let spec = self.config.spec();
        let summary = Table::new("summary")
            .with("output", Column::Str(vec![Some(r.output.clone())]))
            .with(
                "source",
                Column::Str(vec![Some(
                    r.source.clone().unwrap_or_else(|| "text".into()),
                )]),
            )
            .with("parameters", Column::I64(vec![Some(r.parameters as i64)]))
            .with(
                "vocab_size",
                Column::I64(vec![Some(self.config.data.vocab_size as i64)]),
            )
            .with("steps", Column::I64(vec![Some(spec.steps as i64)]))
            .with(
                "tokens_seen",
                Column::I64(vec![Some((spec.steps * spec.batch * spec.context) as i64)]),
            )
            .with(
                "train_tokens",
                Column::I64(vec![Some(r.train_tokens as i64)]),
            )
            .with(
                "valid_tokens",
                Column::I64(vec![Some(r.valid_tokens as i64)]),
            )
            .with(
                "bytes_per_token",
                Column::F64(vec![Some(r.bytes_per_token)]),
            )
            .with(
                "final_train_loss",
                Column::F64(vec![h.last().map(|x| x.train_loss)]),
            )
            .with("final_valid_loss", Column::F64(vec![last_valid]))
            .with(
                "valid_perplexity",
                Column::F64(vec![last_valid.map(f64::exp)]),
            )
            .with(
                "train_tokens_per_second",
                Column::F64(vec![Some(r.tokens_per_second)]),
            )
            .with(
                "resumed_from",
                Column::I64(vec![Some(r.resumed_from as i64)]),
            );
        Ok(vec![curve, summary])
    }
}
