//! The key/value cache of a decoder, which speculative decoding rolls back when
//! the target rejects drafted tokens.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

/// Keys and values of every layer, shape `[batch, kv_heads, positions, head_dim]`.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![None; n_layers],
            len: 0,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys and values of `layer`, if any are cached.
    pub fn layer(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(layer)?.as_ref().map(|(k, v)| (k, v))
    }

    /// Appends new keys and values for `layer` and returns all of them so far.
    /// The position count advances when the last layer appends.
    pub fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let new = k.dim(2)?;
        let merged = match self.layers[layer].take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
        };
        self.layers[layer] = Some(merged.clone());
        if layer + 1 == self.layers.len() {
            self.len += new;
        }
        Ok(merged)
    }

    /// Repeats a one-row cache `rows` times along the batch axis, so that
    /// `rows` continuations of the same prefix (the branches of a draft tree)
    /// are verified in one batched pass.
    pub fn repeat_rows(&mut self, rows: usize) -> Result<()> {
        for slot in self.layers.iter_mut() {
            if let Some((k, v)) = slot.take() {
                if k.dim(0)? != 1 {
                    bail!(
                        "only a one-row cache can be repeated, not {} rows",
                        k.dim(0)?
                    );
                }
                *slot = Some((
                    Tensor::cat(&vec![&k; rows], 0)?,
                    Tensor::cat(&vec![&v; rows], 0)?,
                ));
            }
        }
        Ok(())
    }

    /// Keeps batch row `row` only (the branch a verification kept).
    pub fn select_row(&mut self, row: usize) -> Result<()> {
        for slot in self.layers.iter_mut() {
            if let Some((k, v)) = slot.take() {
                *slot = Some((k.narrow(0, row, 1)?, v.narrow(0, row, 1)?));
            }
        }
        Ok(())
    }

    /// Keeps the first `prefix` positions and then the tree nodes at `path`
    /// (indices among the positions after the prefix, in order), dropping every
    /// other node: the accepted path of a draft tree fed by
    /// [`Model::forward_tree`](super::llama::Model::forward_tree) stays cached
    /// as if it had been fed as a plain sequence.
    pub fn keep_path(&mut self, prefix: usize, path: &[usize]) -> Result<()> {
        let nodes = self.len.checked_sub(prefix).with_context(|| {
            format!(
                "a prefix of {prefix} positions in a cache holding {}",
                self.len
            )
        })?;
        if let Some(&bad) = path.iter().find(|&&n| n >= nodes) {
            bail!("tree node {bad} of a cache holding {nodes} nodes after the prefix");
        }
        let keep = prefix + path.len();
        if path.iter().enumerate().all(|(i, &n)| n == i) {
            // The path is already in place: keeping it is a rollback.
            return self.rollback(self.len - keep);
        }
        let indices: Vec<u32> = (0..prefix as u32)
            .chain(path.iter().map(|&n| (prefix + n) as u32))
            .collect();
        for slot in self.layers.iter_mut() {
            if let Some((k, v)) = slot.take() {
                let at = Tensor::new(indices.as_slice(), k.device())?;
                *slot = Some((k.index_select(&at, 2)?, v.index_select(&at, 2)?));
            }
        }
        self.len = keep;
        Ok(())
    }

    /// Forgets the last `n` positions (rejected draft tokens).
    pub fn rollback(&mut self, n: usize) -> Result<()> {
        if n > self.len {
            bail!(
                "cannot roll back {n} positions of a cache holding {}",
                self.len
            );
        }
        let keep = self.len - n;
        for slot in self.layers.iter_mut() {
            if let Some((k, v)) = slot.take() {
                *slot = if keep == 0 {
                    None
                } else {
                    Some((k.narrow(2, 0, keep)?, v.narrow(2, 0, keep)?))
                };
            }
        }
        self.len = keep;
        Ok(())
    }
}
