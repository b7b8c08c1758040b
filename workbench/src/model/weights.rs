//! Named tensors, taken out one by one with a check of their shape.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use candle_core::Tensor;

/// Tensors by name, as loaded from a checkpoint. Taking a tensor checks its shape
/// and names it in the error, so a mismatched file never panics deep in a matmul.
#[derive(Debug, Default)]
pub struct Weights {
    /// Where the tensors came from (shown in errors).
    pub source: String,
    tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    /// An empty store for tensors from `source`.
    pub fn new(source: impl Into<String>) -> Self {
        Weights {
            source: source.into(),
            tensors: BTreeMap::new(),
        }
    }

    /// Adds a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Names of the tensors left.
    pub fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    /// Removes and returns `name`, which must have exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let Some(t) = self.tensors.remove(name) else {
            bail!(
                "{}: missing tensor `{name}` (expected shape {shape:?})",
                self.source
            );
        };
        if t.dims() != shape {
            bail!(
                "{}: tensor `{name}` has shape {:?}; expected {shape:?}",
                self.source,
                t.dims()
            );
        }
        Ok(t)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
