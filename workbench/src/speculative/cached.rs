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
    /// The tokens each cache row holds (after a tree pass, the linear
    /// sequence before the tree).
    fed: Vec<Vec<u32>>,
    /// The draft tree fed after `fed[0]` by the last [`tree_logits`](Self::tree_logits)
    /// call, until the next call keeps its path along the new sequence.
    tail: Vec<TailNode>,
    /// The logits after `fed[0]`'s last token computed with the tail (empty
    /// when the last call was not a tree call).
    tail_root: Vec<f32>,
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
            tail: Vec::new(),
            tail_root: Vec::new(),
            calls: 0,
            seconds: 0.0,
        }
    }

    /// Keeps the cache row sharing the longest prefix with `sequence`, rolled
    /// back to at most `limit` positions of that prefix; returns its length.
    fn keep_prefix(&mut self, sequence: &[u32], limit: usize) -> Result<usize> {
        self.keep_tree_path(sequence)?;
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

    /// Keeps, of a draft tree fed after `fed[0]`, the path that `sequence`
    /// continues with (the accepted drafts), and drops every other node.
    fn keep_tree_path(&mut self, sequence: &[u32]) -> Result<()> {
        if self.tail_root.is_empty() {
            return Ok(());
        }
        let prefix = self.fed[0].len();
        let mut path: Vec<usize> = Vec::new();
        if sequence.starts_with(&self.fed[0]) {
            for &token in &sequence[prefix..] {
                let parent = path.last().copied();
                match self
                    .tail
                    .iter()
                    .position(|n| n.parent == parent && n.token == token)
                {
                    Some(i) => path.push(i),
                    None => break,
                }
            }
        }
        self.cache.keep_path(prefix, &path)?;
        let tokens: Vec<u32> = path.iter().map(|&i| self.tail[i].token).collect();
        self.fed[0].extend(tokens);
        self.tail.clear();
        self.tail_root.clear();
        Ok(())
    }

    /// Logits for a draft tree after `sequence` in one forward pass: the rows
    /// after each of `sequence[from..]` (the last predicts the tree's first
    /// level), and one row per tree node, after it. Node i is `tokens[i]` with
    /// parent `parents[i]` (an earlier node, or `None` for a child of
    /// `sequence`'s last token). The cache is first rolled back as by
    /// [`logits`](Self::logits); the tree then stays cached until the next call
    /// keeps the path that call's sequence continues along.
    ///
    /// A call that grows the tree fed last (same sequence, its nodes first)
    /// feeds only the new nodes: a drafter grows its tree one level per call.
    pub fn tree_logits(
        &mut self,
        sequence: &[u32],
        from: usize,
        tokens: &[u32],
        parents: &[Option<usize>],
    ) -> Result<TreeLogits> {
        anyhow::ensure!(from < sequence.len(), "no position to predict");
        anyhow::ensure!(tokens.len() == parents.len(), "one parent per tree node");
        let grows = self.fed.len() == 1
            && !self.tail_root.is_empty()
            && from + 1 == sequence.len()
            && self.fed[0] == sequence
            && self.tail.len() <= tokens.len()
            && self
                .tail
                .iter()
                .zip(tokens.iter().zip(parents))
                .all(|(n, (&t, &p))| n.token == t && n.parent == p);
        let (rows, linear) = if grows {
            let old = self.tail.len();
            let mut all: Vec<Vec<f32>> = self.tail.iter().map(|n| n.row.clone()).collect();
            if old < tokens.len() {
                let clock = Instant::now();
                let logits = self.model.forward_tree(
                    &tokens[old..],
                    parents,
                    sequence.len(),
                    &mut self.cache,
                )?;
                all.extend(logits.squeeze(0)?.to_vec2::<f32>()?);
                self.seconds += clock.elapsed().as_secs_f64();
                self.calls += 1;
            }
            (all, vec![self.tail_root.clone()])
        } else {
            let common = self.keep_prefix(sequence, from)?;
            let new = &sequence[common..];
            // The uncached tokens are a chain in front of the tree.
            let fed: Vec<u32> = new.iter().chain(tokens).copied().collect();
            let chain = (0..new.len()).map(|i| i.checked_sub(1));
            let tree = parents
                .iter()
                .map(|p| Some(p.map_or(new.len() - 1, |p| new.len() + p)));
            let all_parents: Vec<Option<usize>> = chain.chain(tree).collect();
            let clock = Instant::now();
            let logits = self
                .model
                .forward_tree(&fed, &all_parents, common, &mut self.cache)?;
            let mut rows = logits.squeeze(0)?.to_vec2::<f32>()?;
            self.seconds += clock.elapsed().as_secs_f64();
            self.calls += 1;
            let nodes = rows.split_off(new.len());
            self.fed[0].extend_from_slice(new);
            self.tail_root = rows.last().expect("a token after the cache").clone();
            (nodes, rows[from - common..].to_vec())
        };
        self.tail = tokens
            .iter()
            .zip(parents)
            .zip(&rows)
            .map(|((&token, &parent), row)| TailNode {
                token,
                parent,
                row: row.clone(),
            })
            .collect();
        Ok(TreeLogits {
            sequence: linear,
            nodes: rows,
        })
    }

    /// Positions held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// What [`CachedModel::tree_logits`] returns.
pub struct TreeLogits {
    /// The rows after each of `sequence[from..]` (the last predicts the
    /// tree's first level).
    pub sequence: Vec<Vec<f32>>,
    /// One row per tree node, after it.
    pub nodes: Vec<Vec<f32>>,
}

/// A draft tree node held in the cache after the linear sequence.
struct TailNode {
    token: u32,
    parent: Option<usize>,
    /// The logits after it.
    row: Vec<f32>,
}
