//! llama2.c's version-0 checkpoints (`run.c`'s format), such as stories260K.
//!
//! Layout: a header of seven little-endian i32 — dim, hidden_dim, n_layers,
//! n_heads, n_kv_heads, vocab_size, seq_len, where a negative vocab_size means the
//! classifier is stored separately — then float32 tensors in this order, each
//! matrix row-major as (out, in): token embedding [vocab, dim]; per layer, stacked
//! over layers: attention RMSNorm [dim], wq [q_dim, dim], wk [kv_dim, dim],
//! wv [kv_dim, dim], wo [dim, q_dim], FFN RMSNorm [dim], w1 [hidden, dim],
//! w2 [dim, hidden], w3 [hidden, dim]; final RMSNorm [dim]; two legacy RoPE tables
//! of seq_len * head_dim / 2 floats each (unused: RoPE is recomputed); and, when
//! not shared, the classifier [vocab, dim].

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::config::{ModelConfig, RopeStyle};
use super::weights::Weights;

/// Reads a version-0 llama2.c checkpoint into a config and Hugging Face-style
/// tensor names (`model.layers.{i}.self_attn.q_proj.weight`, ...).
pub fn load(path: &Path, device: &Device) -> Result<(ModelConfig, Weights)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes, &path.display().to_string(), device)
}

/// Parses checkpoint bytes; `source` names the file in errors.
pub fn parse(bytes: &[u8], source: &str, device: &Device) -> Result<(ModelConfig, Weights)> {
    if bytes.len() < 28 {
        bail!(
            "{source}: {} bytes is too short for the 28-byte llama2.c header",
            bytes.len()
        );
    }
    let header: Vec<i32> = bytes[..28]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let names = [
        "dim",
        "hidden_dim",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "vocab_size",
        "seq_len",
    ];
    for (i, (&v, name)) in header.iter().zip(names).enumerate() {
        if v == 0 || (v < 0 && i != 5) {
            bail!("{source}: header field {name} is {v}; expected a positive size (is this a llama2.c version-0 checkpoint?)");
        }
    }
    let [dim, hidden, layers, heads, kv_heads, vocab, seq_len] =
        [0, 1, 2, 3, 4, 5, 6].map(|i| header[i].unsigned_abs() as usize);
    let shared = header[5] > 0;
    if !dim.is_multiple_of(heads) {
        bail!("{source}: dim {dim} is not a multiple of n_heads {heads}");
    }
    let head_dim = dim / heads;
    let config = ModelConfig {
        dim,
        hidden_dim: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim,
        vocab_size: vocab,
        max_seq_len: seq_len,
        rope_theta: 10000.0,
        rope_style: RopeStyle::Interleaved,
        norm_eps: 1e-5,
        tied_embeddings: shared,
        qk_norm: false,
        attention_bias: false,
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let (q_dim, kv_dim) = (config.q_dim(), config.kv_dim());

    let mut reader = Reader {
        bytes,
        offset: 28,
        source,
        device,
    };
    let mut weights = Weights::new(source);
    weights.insert(
        "model.embed_tokens.weight",
        reader.tensor("model.embed_tokens.weight", &[vocab, dim])?,
    );
    // Per-layer tensors are stored stacked over layers, one kind after another.
    let stacked: [(&str, [usize; 2]); 9] = [
        ("input_layernorm", [1, dim]),
        ("self_attn.q_proj", [q_dim, dim]),
        ("self_attn.k_proj", [kv_dim, dim]),
        ("self_attn.v_proj", [kv_dim, dim]),
        ("self_attn.o_proj", [dim, q_dim]),
        ("post_attention_layernorm", [1, dim]),
        ("mlp.gate_proj", [hidden, dim]),
        ("mlp.down_proj", [dim, hidden]),
        ("mlp.up_proj", [hidden, dim]),
    ];
    for (kind, [rows, cols]) in stacked {
        for l in 0..layers {
            let name = format!("model.layers.{l}.{kind}.weight");
            let shape: Vec<usize> = if rows == 1 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            let t = reader.tensor(&name, &shape)?;
            weights.insert(name, t);
        }
    }
    weights.insert(
        "model.norm.weight",
        reader.tensor("model.norm.weight", &[dim])?,
    );
    reader.skip("the legacy RoPE tables", seq_len * head_dim)?;
    if !shared {
        weights.insert(
            "lm_head.weight",
            reader.tensor("lm_head.weight", &[vocab, dim])?,
        );
    }
    if reader.offset != bytes.len() {
        bail!(
            "{source}: {} bytes left after the last tensor; the header does not match the file",
            bytes.len() - reader.offset
        );
    }
    Ok((config, weights))
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    source: &'a str,
    device: &'a Device,
}

impl Reader<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let count: usize = shape.iter().product();
        let end = self.offset + 4 * count;
        if end > self.bytes.len() {
            bail!(
                "{}: truncated: tensor `{name}` of shape {shape:?} needs bytes {}..{end} but the file has {}",
                self.source,
                self.offset,
                self.bytes.len()
            );
        }
        let values: Vec<f32> = self.bytes[self.offset..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.offset = end;
        Ok(Tensor::from_vec(values, shape, self.device)?)
    }

    fn skip(&mut self, what: &str, floats: usize) -> Result<()> {
        let end = self.offset + 4 * floats;
        if end > self.bytes.len() {
            bail!("{}: truncated in {what}", self.source);
        }
        self.offset = end;
        Ok(())
    }
}
