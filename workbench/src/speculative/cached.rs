//! A model and its KV cache, kept consistent with a token sequence that grows
//! and, after rejected drafts, shrinks.

use anyhow::Result;
use candle_core::{Device, Tensor};

use crate::model::cache::KvCache;
use crate::model::llama::Model;

/// A model with a cache of the tokens it has been fed.
pub struct CachedModel {
    /// The model.
    pub model: Model,
    cache: KvCache,
    fed: Vec<u32>,
    /// Forward passes run (a verification pass counts once).
    pub calls: u64,
}

impl CachedModel {
    /// A model with an empty cache.
    pub fn new(model: Model) -> Self {
        let cache = KvCache::new(model.config.n_layers);
        CachedModel {
            model,
            cache,
            fed: Vec::new(),
            calls: 0,
        }
    }

    /// Logits predicting positions `from + 1 ..= sequence.len()`, i.e. after
    /// each of `sequence[from..]`. The cache is first rolled back to the longest
    /// prefix of `sequence[..=from]` it holds, so rejected drafts are forgotten;
    /// tokens it already holds are not fed again.
    pub fn logits(&mut self, sequence: &[u32], from: usize) -> Result<Vec<Vec<f32>>> {
        anyhow::ensure!(from < sequence.len(), "no position to predict");
        let common = self
            .fed
            .iter()
            .zip(sequence)
            .take_while(|(a, b)| a == b)
            .count()
            .min(from);
        self.cache.rollback(self.fed.len() - common)?;
        self.fed.truncate(common);
        let new = &sequence[common..];
        let tokens = Tensor::new(new, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.forward(&tokens, &mut self.cache, None)?;
        self.calls += 1;
        self.fed.extend_from_slice(new);
        let rows = logits.squeeze(0)?.to_vec2::<f32>()?;
        Ok(rows[from - common..].to_vec())
    }

    /// Positions held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}
