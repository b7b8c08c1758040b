//! Drafters: what proposes the tokens the target verifies.

use anyhow::Result;

use super::cached::CachedModel;
use super::sampling::Shaping;

/// How a drafter draws its tokens: from its shaped distribution, with
/// Gumbel-max noise keyed by (seed, position, token, `stream`). Under the
/// `gumbel` rule the stream is the target's own, so drafter and target share
/// noise; otherwise it is the drafter's (one stream per tree branch).
#[derive(Clone, Copy, Debug)]
pub struct DraftDraw {
    /// Temperature and filters, the target's own.
    pub shaping: Shaping,
    /// Seed of the keyed noise.
    pub seed: u64,
    /// Philox stream of the noise.
    pub stream: u32,
    /// Which branch of a draft tree this chain is (0 for a single chain).
    pub branch: usize,
    /// Whether the branches' first tokens are the top K of `scores + G` (the
    /// `gumbel` tree: K distinct tokens, a sample without replacement), branch
    /// k taking the k-th; otherwise each branch samples with its own `stream`.
    pub distinct: bool,
}

/// One proposed token and the distribution it was drawn from.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The token.
    pub token: u32,
    /// The drafter's shaped distribution q at this position (one-hot for a
    /// deterministic drafter).
    pub q: Vec<f64>,
}

/// Proposes up to `gamma` tokens continuing `context`.
pub trait Drafter {
    /// A short name for tables.
    fn name(&self) -> String;
    /// Up to `gamma` drafts after `context` (fewer, even none, is allowed).
    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>>;
    /// Forward passes the drafter has run.
    fn calls(&self) -> u64 {
        0
    }
    /// Seconds spent in those forward passes.
    fn seconds(&self) -> f64 {
        0.0
    }
}

/// A language model as drafter (a smaller model, or the target quantized).
pub struct ModelDrafter {
    /// Name shown in tables.
    pub label: String,
    /// The model and its cache.
    pub model: CachedModel,
}

impl ModelDrafter {
    /// A drafter named `label` running `model`.
    pub fn new(label: impl Into<String>, model: crate::model::llama::Model) -> Self {
        ModelDrafter {
            label: label.into(),
            model: CachedModel::new(model),
        }
    }
}

impl Drafter for ModelDrafter {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>> {
        let mut sequence = context.to_vec();
        let mut drafts = Vec::with_capacity(gamma);
        for i in 0..gamma {
            let logits = self.model.logits(&sequence, sequence.len() - 1)?;
            let row = &logits[0];
            let position = sequence.len() as u64;
            let rank = if i == 0 && draw.distinct {
                draw.branch
            } else {
                0
            };
            let token = draw
                .shaping
                .ranked(row, draw.seed, position, draw.stream, rank + 1)[rank];
            drafts.push(Draft {
                token,
                q: draw.shaping.distribution(row),
            });
            sequence.push(token);
        }
        Ok(drafts)
    }

    fn calls(&self) -> u64 {
        self.model.calls
    }

    fn seconds(&self) -> f64 {
        self.model.seconds
    }
}

/// Prompt lookup: finds the latest earlier occurrence of the context's last
/// `n` tokens and proposes what followed it (deterministic, so q is one-hot).
/// Branch k of a tree follows the k-th latest occurrence (a different
/// deterministic draft per branch).
pub struct NgramDrafter {
    /// Length of the matched suffix.
    pub n: usize,
    /// Vocabulary size (for the one-hot q).
    pub vocab: usize,
}

impl Drafter for NgramDrafter {
    fn name(&self) -> String {
        format!("ngram{}", self.n)
    }

    fn propose(&mut self, context: &[u32], gamma: usize, draw: DraftDraw) -> Result<Vec<Draft>> {
        let len = context.len();
        if self.n == 0 || len <= self.n {
            return Ok(Vec::new());
        }
        let suffix = &context[len - self.n..];
        // Matches that end before the suffix itself, latest first.
        let found = (0..len - self.n)
            .rev()
            .filter(|&start| &context[start..start + self.n] == suffix)
            .nth(draw.branch);
        let Some(start) = found else {
            return Ok(Vec::new());
        };
        Ok(context[start + self.n..]
            .iter()
            .take(gamma)
            .map(|&token| {
                let mut q = vec![0.0; self.vocab];
                if let Some(slot) = q.get_mut(token as usize) {
                    *slot = 1.0;
                }
                Draft { token, q }
            })
            .collect())
    }
}
