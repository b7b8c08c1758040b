//! The starting model and the tokens of a QAT run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use super::config::QatConfig;
use crate::model::config::ModelConfig;
use crate::model::{hf, llama2c};
use crate::studies::eval::config::{EvalConfig, EvalData};
use crate::studies::eval::plan::EvalPlan;
use crate::text::{eval_windows, split_text, BatchSampler, TextTokenizer};
use crate::train::init::tensor_shapes;
use wb_kernels::philox;

/// A validation window: inputs and targets, `context` tokens each.
pub type Window = (Vec<u32>, Vec<u32>);

/// The starting model's architecture and tensors (sorted by name).
pub struct Start {
    /// Its architecture.
    pub config: ModelConfig,
    /// Its tensors, in the names the training loop uses.
    pub tensors: Vec<(String, Tensor)>,
}

/// Loads the checkpoint (a Hugging Face folder or a llama2.c file).
pub fn load_start(path: &Path) -> Result<Start> {
    let device = Device::Cpu;
    let (config, mut weights) = if path.is_dir() {
        hf::load(path, &device)?
    } else {
        llama2c::load(path, &device)?
    };
    let mut tensors = tensor_shapes(&config)
        .into_iter()
        .map(|(name, shape)| Ok((name.clone(), weights.take(&name, &shape)?)))
        .collect::<Result<Vec<_>>>()?;
    let left = weights.names();
    if !left.is_empty() {
        bail!("{}: unexpected tensors {}", path.display(), left.join(", "));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Start { config, tensors })
}

/// Philox stream of the sequence choice of sampled training batches (the text
/// batches use `text::STREAM_BATCHES`; other modules stay below 0x0012_0000).
pub const STREAM_SEQUENCES: u32 = 0x0021_0000;

/// The training tokens.
pub enum TrainTokens {
    /// A text's token stream: windows start anywhere.
    Stream(Vec<u32>),
    /// Sampled sequences, each starting with BOS: windows are their prefixes,
    /// since llama2.c models never see a context without BOS at its start.
    Sequences(Vec<Vec<u32>>),
}

/// Training tokens and validation windows.
pub struct Tokens {
    /// The training tokens.
    pub train: TrainTokens,
    /// Validation windows of the final evaluation (the first `eval_windows` are
    /// also evaluated along training).
    pub valid: Vec<Window>,
}

/// Makes the batches of one run: `(inputs, targets)` of `batch` windows of
/// `context` tokens, a pure function of (tokens, seed, step).
pub struct Batches {
    stream: Option<BatchSampler>,
    sequences: Vec<Vec<u32>>,
    context: usize,
    batch: usize,
    seed: u64,
}

impl Batches {
    /// Batches of `tokens` for a run with `seed`.
    pub fn new(tokens: &Tokens, context: usize, batch: usize, seed: u64) -> Result<Self> {
        Ok(match &tokens.train {
            TrainTokens::Stream(t) => Batches {
                stream: Some(BatchSampler::new(t.clone(), context, batch, seed)?),
                sequences: Vec::new(),
                context,
                batch,
                seed,
            },
            TrainTokens::Sequences(s) => Batches {
                stream: None,
                sequences: s.clone(),
                context,
                batch,
                seed,
            },
        })
    }

    /// Batch `step`.
    pub fn batch(&self, step: u64) -> (Vec<u32>, Vec<u32>) {
        if let Some(s) = &self.stream {
            return s.batch(step);
        }
        let n = self.sequences.len() as u64;
        let mut inputs = Vec::with_capacity(self.batch * self.context);
        let mut targets = Vec::with_capacity(self.batch * self.context);
        for row in 0..self.batch {
            let x = philox::bits(self.seed, step, row as u32, STREAM_SEQUENCES) as u64;
            let seq = &self.sequences[((x * n) >> 32) as usize];
            inputs.extend_from_slice(&seq[..self.context]);
            targets.extend_from_slice(&seq[1..=self.context]);
        }
        (inputs, targets)
    }
}

/// The tokens of `config` for windows of `context`: a text cut as the training
/// recipe cuts it, or sequences sampled from the starting model.
pub fn tokens(config: &QatConfig, context: usize) -> Result<Tokens> {
    let d = &config.data;
    let (train, valid) = match d.source.as_str() {
        "text" => {
            let path = d.resolved_text.as_ref().context("unresolved text")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (train_part, valid_part) = split_text(&text, d.valid_fraction);
            let tokenizer = TextTokenizer::load(d.tokenizer.as_ref().context("no tokenizer")?)?;
            let train = tokenizer.encode(train_part)?;
            if train.len() <= context {
                bail!(
                    "{} training tokens: fewer than one window of {context}",
                    train.len()
                );
            }
            let valid = eval_windows(&tokenizer.encode(valid_part)?, context);
            (TrainTokens::Stream(train), valid)
        }
        _ => {
            if d.length <= context {
                bail!(
                    "sampled sequences of {} tokens are too short for a context of {context}",
                    d.length
                );
            }
            let sample = |seed: u64, sequences: usize| -> Result<Vec<Vec<u32>>> {
                let data = EvalData {
                    source: "sampled".into(),
                    sequences,
                    length: d.length,
                    temperature: d.temperature,
                    ..EvalData::default()
                };
                let plan = EvalPlan::new(EvalConfig::model_and_tokens(seed, &config.model, &data))?;
                let model = plan.load()?;
                plan.sequences(&model)
            };
            // Validation sequences come from another seed than the training ones.
            let valid_seed = config.seed ^ 0x05EE_D0F7_A11D;
            let valid = sample(valid_seed, d.valid_sequences)?
                .iter()
                .map(|s| (s[..context].to_vec(), s[1..=context].to_vec()))
                .collect();
            (
                TrainTokens::Sequences(sample(config.seed, d.sequences)?),
                valid,
            )
        }
    };
    let mut windows: Vec<Window> = valid;
    if windows.len() < d.final_windows {
        bail!(
            "the validation tokens make {} windows of {context}; data.final_windows asks for {}",
            windows.len(),
            d.final_windows
        );
    }
    windows.truncate(d.final_windows);
    Ok(Tokens {
        train,
        valid: windows,
    })
}

/// sha256 of a checkpoint file, or of every file of a folder in name order.
pub fn digest(path: &Path) -> Result<String> {
    if path.is_file() {
        return crate::data::sha256_file(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(crate::data::sha256_file(&f)?.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
