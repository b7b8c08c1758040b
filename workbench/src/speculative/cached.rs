//! A model and its KV cache, kept consistent with a token sequence that grows
//! and, after rejected drafts, shrinks.

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};

use crate::model::cache::KvCache;
use crate::model::llama::Model;

/// A model with a cache of the tokens it has been fed: one row, or after a
/// batched verification of several branches, one row per branch.
pub struct CachedModel {
    /// The model.
    pub model: Model,
    cache: KvCache,
    /// The tokens each cache row holds.
    fed: Vec<Vec<u32>>,
    /// Forward passes run (a verification pass counts once, batched or not).
    pub calls: u64,
    /// Wall-clock seconds spent in those passes (a measurement, not a result:
    /// it varies between runs).
    pub seconds: f64,
}

impl CachedModel {
    /// A model with an empty cache.
    pub fn new(model: Model) -> Self {
        let cache = KvCache::new(model.config.n_layers);
        CachedModel {
            model,
            cache,
            fed: vec![Vec::new()],
            calls: 0,
            seconds: 0.0,
        }
    }

    /// Keeps the cache row sharing the longest prefix with `sequence`, rolled
    /// back to at most `limit` positions of that prefix; returns its length.
    fn keep_prefix(&mut self, sequence: &[u32], limit: usize) -> Result<usize> {
        let shared = |fed: &Vec<u32>| fed.iter().zip(sequence).take_while(|(a, b)| a == b).count();
        let (row, common) = self
            .fed
            .iter()
            .enumerate()
            .map(|(i, f)| (i, shared(f)))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .expect("at least one row");
        if self.fed.len() > 1 {
            self.cache.select_row(row)?;
            let kept = std::mem::take(&mut self.fed[row]);
            self.fed = vec![kept];
        }
        let common = common.min(limit);
        self.cache.rollback(self.fed[0].len() - common)?;
        self.fed[0].truncate(common);
        Ok(common)
    }

    /// Logits predicting positions `from + 1 ..= sequence.len()`, i.e. after
    /// each of `sequence[from..]`. The cache is first rolled back to the longest
    /// prefix of `sequence[..=from]` it holds, so rejected drafts are forgotten;
    /// tokens it already holds are not fed again.
    pub fn logits(&mut self, sequence: &[u32], from: usize) -> Result<Vec<Vec<f32>>> {
        anyhow::ensure!(from < sequence.len(), "no position to predict");
        let common = self.keep_prefix(sequence, from)?;
        let new = &sequence[common..];
        let tokens = Tensor::new(new, &Device::Cpu)?.unsqueeze(0)?;
        let clock = Instant::now();
        let logits = self.model.forward(&tokens, &mut self.cache, None)?;
        let rows = logits.squeeze(0)?.to_vec2::<f32>()?;
        self.seconds += clock.elapsed().as_secs_f64();
        self.calls += 1;
        self.fed[0].extend_from_slice(new);
        Ok(rows[from - common..].to_vec())
    }

    /// Logits for several continuations of `prefix` in one batched pass: for
    /// branch k, the logits after `prefix[from..]` and after each token of
    /// `branches[k]` (the last row predicts the token after the branch). Shorter
    /// branches are padded at the end, which no earlier position attends to;
    /// the padding's rows are dropped. The cache keeps one row per branch until
    /// the next call picks the one it continues.
    pub fn branch_logits(
        &mut self,
        prefix: &[u32],
        from: usize,
        branches: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        anyhow::ensure!(from < prefix.len(), "no position to predict");
        if branches.len() <= 1 {
            let mut sequence = prefix.to_vec();
            sequence.extend(branches.first().into_iter().flatten());
            return Ok(vec![self.logits(&sequence, from)?]);
        }
        let common = self.keep_prefix(prefix, from)?;
        let longest = branches.iter().map(Vec::len).max().unwrap_or(0);
        let width = prefix.len() - common + longest;
        let mut flat = Vec::with_capacity(branches.len() * width);
        for b in branches {
            flat.extend_from_slice(&prefix[common..]);
            flat.extend_from_slice(b);
            flat.extend(std::iter::repeat_n(0, longest - b.len()));
        }
        let tokens = Tensor::from_vec(flat.clone(), (branches.len(), width), &Device::Cpu)?;
        let clock = Instant::now();
        self.cache.repeat_rows(branches.len())?;
        let logits = self.model.forward(&tokens, &mut self.cache, None)?;
        let rows = logits.to_vec3::<f32>()?;
        self.seconds += clock.elapsed().as_secs_f64();
        self.calls += 1;
        let mut fed = Vec::with_capacity(branches.len());
        let mut out = Vec::with_capacity(branches.len());
        for (k, b) in branches.iter().enumerate() {
            let mut f = prefix[..common].to_vec();
            f.extend_from_slice(&flat[k * width..(k + 1) * width]);
            fed.push(f);
            let skip = from - common;
            let keep = prefix.len() - from + b.len();
            out.push(rows[k][skip..skip + keep].to_vec());
        }
        self.fed = fed;
        Ok(out)
    }

    /// Positions held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}
