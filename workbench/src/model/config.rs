//! The architecture of a Llama-family decoder.

use serde::{Deserialize, Serialize};

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1), as llama2.c's run.c and Meta's original code.
    Interleaved,
    /// Dimension i with i + head_dim/2, as Hugging Face's `rotate_half`.
    HalfSplit,
}

/// Dimensions and options of a decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Residual stream width.
    pub dim: usize,
    /// MLP hidden width.
    pub hidden_dim: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest sequence the rotary tables cover.
    pub max_seq_len: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// How RoPE pairs dimensions.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
    /// Whether the output head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Qwen3's per-head RMSNorm of queries and keys before RoPE.
    pub qk_norm: bool,
    /// Biases on the query, key and value projections (Qwen2).
    #[serde(default)]
    pub attention_bias: bool,
}

impl ModelConfig {
    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Checks that the dimensions fit together.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("dim", self.dim),
            ("hidden_dim", self.hidden_dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
            ("max_seq_len", self.max_seq_len),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} is 0; expected a positive size"));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is odd; RoPE rotates pairs",
                self.head_dim
            ));
        }
        Ok(())
    }
}
