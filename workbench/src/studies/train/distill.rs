//! Sequence-level distillation (Kim & Rush 2016): the training stream is text
//! sampled from a teacher model rather than the text itself, so a drafter
//! trained on it learns the distribution it will be asked to predict — the
//! teacher's — instead of the corpus's.
//!
//! Each sample starts with a prompt of `prompt` consecutive tokens of the
//! training text (so samples cover the text's contexts) and continues with
//! tokens drawn from the teacher at `temperature` by the `gumbel_sample`
//! kernel, keyed by (seed, sample, position): the corpus is a pure function of
//! the teacher, the text and the config.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wb_kernels::philox;

use crate::model::cache::KvCache;
use crate::model::hf;
use crate::model::llama::{last_logits, Model};
use crate::model::sample::{gumbel_sample, NOISE_REVISION};
use crate::results::store::write_atomic;

/// The Philox stream of the prompts' start offsets.
pub const STREAM_DISTILL_PROMPTS: u32 = 0x0021_0000;
/// Added to the config's seed for the teacher's draws, so that they share no
/// noise with anything else keyed by the same seed.
const SAMPLE_SEED_OFFSET: u64 = 0x00D1_5711;
/// Rows sampled together in one batched decode.
const ROWS_PER_BATCH: usize = 64;

/// `[data.distill]`: what the teacher samples.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher: a Hugging Face folder with its `tokenizer.json` (which the
    /// trained model adopts).
    pub teacher: String,
    /// Samples drawn.
    pub sequences: usize,
    /// Tokens of training text that start each sample.
    #[serde(default = "default_prompt")]
    pub prompt: usize,
    /// Tokens per sample, prompt included (default: `optimizer.context + 1`,
    /// one training window); at most the teacher's `max_seq_len`.
    #[serde(default)]
    pub length: Option<usize>,
    /// Sampling temperature (> 0).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn default_prompt() -> usize {
    16
}
fn default_temperature() -> f64 {
    1.0
}

/// A distilled corpus and where it came from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Corpus {
    /// sha256 of the teacher's weights file.
    pub teacher_sha256: String,
    /// The noise revision the draws were made with.
    pub noise_revision: u32,
    /// The samples, each `length` tokens.
    pub samples: Vec<Vec<u32>>,
    /// Seconds the sampling took (a measurement, not part of the result).
    pub seconds: f64,
}

impl Corpus {
    /// Every sample, concatenated (the training stream).
    pub fn stream(&self) -> Vec<u32> {
        self.samples.concat()
    }
}

/// sha256 of the teacher's weights (its `model.safetensors`).
pub fn teacher_sha256(dir: &Path) -> Result<String> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The teacher's corpus: read from `cache` if it holds the one these
/// arguments make, else sampled and written there (atomically), so a rerun
/// after a crash does not sample again.
pub fn corpus(
    teacher_dir: &Path,
    config: &DistillConfig,
    length: usize,
    text: &[u32],
    seed: u64,
    cache: &Path,
) -> Result<Corpus> {
    let sha = teacher_sha256(teacher_dir)?;
    if let Ok(bytes) = std::fs::read(cache) {
        if let Ok(c) = serde_json::from_slice::<Corpus>(&bytes) {
            if c.teacher_sha256 == sha
                && c.noise_revision == NOISE_REVISION
                && c.samples.len() == config.sequences
                && c.samples.iter().all(|s| s.len() == length)
            {
                return Ok(c);
            }
        }
    }
    let (model_config, weights) = hf::load(teacher_dir, &Device::Cpu)?;
    let teacher = Model::from_weights(model_config, weights)?;
    let clock = std::time::Instant::now();
    let samples = sample(&teacher, config, length, text, seed)?;
    let c = Corpus {
        teacher_sha256: sha,
        noise_revision: NOISE_REVISION,
        samples,
        seconds: clock.elapsed().as_secs_f64(),
    };
    if let Some(parent) = cache.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_atomic(cache, serde_json::to_string(&c)?.as_bytes())?;
    Ok(c)
}

/// `config.sequences` samples of `length` tokens: a prompt of text, then the
/// teacher's draws.
pub fn sample(
    teacher: &Model,
    config: &DistillConfig,
    length: usize,
    text: &[u32],
    seed: u64,
) -> Result<Vec<Vec<u32>>> {
    if config.prompt == 0 || config.prompt >= length {
        bail!(
            "a prompt of {} tokens does not fit samples of {length}",
            config.prompt
        );
    }
    if length > teacher.config.max_seq_len {
        bail!(
            "samples of {length} tokens exceed the teacher's max_seq_len {}",
            teacher.config.max_seq_len
        );
    }
    if text.len() < config.prompt {
        bail!(
            "the training text has {} tokens, fewer than one prompt",
            text.len()
        );
    }
    let starts = text.len() - config.prompt + 1;
    let mut out = Vec::with_capacity(config.sequences);
    for first in (0..config.sequences).step_by(ROWS_PER_BATCH) {
        let rows: Vec<usize> = (first..(first + ROWS_PER_BATCH).min(config.sequences)).collect();
        let mut seqs: Vec<Vec<u32>> = rows
            .iter()
            .map(|&s| {
                let bits = philox::bits(seed, s as u64, 0, STREAM_DISTILL_PROMPTS) as u64;
                let start = ((bits * starts as u64) >> 32) as usize;
                text[start..start + config.prompt].to_vec()
            })
            .collect();
        let mut cache = KvCache::new(teacher.config.n_layers);
        let prompts: Vec<u32> = seqs.concat();
        let mut input = Tensor::from_vec(prompts, (rows.len(), config.prompt), &Device::Cpu)?;
        for t in config.prompt..length {
            let logits = last_logits(&teacher.forward(&input, &mut cache, None)?)?;
            let positions: Vec<u64> = rows.iter().map(|&s| (s * length + t) as u64).collect();
            let next = gumbel_sample(
                &logits,
                config.temperature,
                seed.wrapping_add(SAMPLE_SEED_OFFSET),
                &positions,
            )?;
            for (seq, &token) in seqs.iter_mut().zip(&next) {
                seq.push(token);
            }
            input = Tensor::new(next.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
        }
        out.extend(seqs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{ModelConfig, RopeStyle};
    use crate::train::init;

    fn tiny() -> Model {
        let config = ModelConfig {
            dim: 16,
            hidden_dim: 32,
            n_layers: 1,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 8,
            vocab_size: 40,
            max_seq_len: 24,
            rope_theta: 10000.0,
            rope_style: RopeStyle::HalfSplit,
            norm_eps: 1e-5,
            tied_embeddings: true,
            qk_norm: false,
            attention_bias: false,
        };
        let weights = init::init_weights(&config, 3, &Device::Cpu).unwrap();
        Model::from_weights(config, weights).unwrap()
    }

    fn distill(sequences: usize) -> DistillConfig {
        DistillConfig {
            teacher: "unused".into(),
            sequences,
            prompt: 4,
            length: None,
            temperature: 1.0,
        }
    }

    /// Batched decoding with a cache samples what one-row full forwards
    /// sample, the prompts are text windows, and the corpus is reproducible.
    #[test]
    fn samples_are_keyed_draws_of_the_teacher_after_text_prompts() {
        let teacher = tiny();
        let text: Vec<u32> = (0..300u32).map(|i| (i * 7 + i / 5) % 40).collect();
        let config = distill(70); // two batches, the second partial
        let samples = sample(&teacher, &config, 12, &text, 5).unwrap();
        assert_eq!(samples.len(), 70);
        assert_eq!(samples, sample(&teacher, &config, 12, &text, 5).unwrap());
        for (s, seq) in samples.iter().enumerate().step_by(23) {
            assert_eq!(seq.len(), 12);
            assert!(text.windows(4).any(|w| w == &seq[..4]), "prompt of {s}");
            for t in 4..12 {
                let input = Tensor::new(&seq[..t], &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let mut cache = KvCache::new(1);
                let logits =
                    last_logits(&teacher.forward(&input, &mut cache, None).unwrap()).unwrap();
                let drawn = gumbel_sample(
                    &logits,
                    1.0,
                    5u64.wrapping_add(SAMPLE_SEED_OFFSET),
                    &[(s * 12 + t) as u64],
                )
                .unwrap();
                assert_eq!(drawn[0], seq[t], "sample {s} position {t}");
            }
        }
        let mut long = config.clone();
        long.prompt = 12;
        assert!(sample(&teacher, &long, 12, &text, 5).is_err());
        assert!(sample(&teacher, &config, 25, &text, 5).is_err());
    }
}
