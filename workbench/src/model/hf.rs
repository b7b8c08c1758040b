//! Hugging Face checkpoint folders: `config.json` plus `model.safetensors`, or
//! shards listed in `model.safetensors.index.json`. Llama, Mistral, SmolLM
//! (model_type `llama`/`mistral`), Qwen2 (attention biases) and Qwen3 (per-head
//! q/k norm). Saving writes the same layout back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::{ModelConfig, RopeStyle};
use super::llama::Model;
use super::weights::Weights;

/// The fields of `config.json` the decoder needs (others are ignored).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct HfConfig {
    /// `llama`, `mistral`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (default: as many as query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width (default: hidden_size / num_attention_heads).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest sequence.
    pub max_position_embeddings: usize,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Whether the head is the embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's optional attention biases (Qwen2 always has them).
    #[serde(default)]
    pub attention_bias: bool,
}

fn default_theta() -> f64 {
    10000.0
}
fn default_eps() -> f64 {
    1e-6
}

/// Model types this loader reads.
pub const MODEL_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

impl HfConfig {
    /// The decoder architecture this config describes.
    pub fn to_model_config(&self) -> Result<ModelConfig> {
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            bail!(
                "model_type `{}` is not supported; expected one of {}",
                self.model_type,
                MODEL_TYPES.join(", ")
            );
        }
        let heads = self.num_attention_heads;
        if heads == 0 {
            bail!("num_attention_heads is 0");
        }
        let config = ModelConfig {
            dim: self.hidden_size,
            hidden_dim: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            n_heads: heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(heads),
            head_dim: self.head_dim.unwrap_or(self.hidden_size / heads),
            vocab_size: self.vocab_size,
            max_seq_len: self.max_position_embeddings,
            rope_theta: self.rope_theta,
            rope_style: RopeStyle::HalfSplit,
            norm_eps: self.rms_norm_eps,
            tied_embeddings: self.tie_word_embeddings,
            qk_norm: self.model_type == "qwen3",
            attention_bias: self.model_type == "qwen2" || self.attention_bias,
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// The config.json of a decoder (for saving).
    pub fn from_model_config(c: &ModelConfig) -> Result<Self> {
        if c.rope_style != RopeStyle::HalfSplit {
            bail!("Hugging Face checkpoints use half-split RoPE; permute the q/k rows of an interleaved model first (see `interleaved_to_half_split`)");
        }
        let model_type = if c.qk_norm {
            "qwen3"
        } else if c.attention_bias {
            "qwen2"
        } else {
            "llama"
        };
        Ok(HfConfig {
            model_type: model_type.into(),
            hidden_size: c.dim,
            intermediate_size: c.hidden_dim,
            num_hidden_layers: c.n_layers,
            num_attention_heads: c.n_heads,
            num_key_value_heads: Some(c.n_kv_heads),
            head_dim: Some(c.head_dim),
            vocab_size: c.vocab_size,
            max_position_embeddings: c.max_seq_len,
            rope_theta: c.rope_theta,
            rms_norm_eps: c.norm_eps,
            tie_word_embeddings: c.tied_embeddings,
            attention_bias: c.attention_bias,
        })
    }
}

/// Reads a checkpoint folder's `config.json`.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let hf: HfConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a supported config.json", config_path.display()))?;
    hf.to_model_config()
        .with_context(|| format!("{}", config_path.display()))
}

/// Reads a checkpoint folder into a config and its weights (as float32).
pub fn load(dir: &Path, device: &Device) -> Result<(ModelConfig, Weights)> {
    let config = read_config(dir)?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        #[derive(Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(&index)?;
        let parsed: Index = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected a `weight_map` of tensor → file",
                index.display()
            )
        })?;
        let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        bail!(
            "{}: no model.safetensors or model.safetensors.index.json",
            dir.display()
        );
    };
    let mut weights = Weights::new(dir.display().to_string());
    for file in files {
        let tensors = candle_core::safetensors::load(&file, device)
            .with_context(|| format!("reading {}", file.display()))?;
        for (name, t) in tensors {
            // A tied head may still be stored; the embedding is what is used.
            if config.tied_embeddings && name == "lm_head.weight" {
                continue;
            }
            weights.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    Ok((config, weights))
}

/// Writes `model` as `config.json` plus `model.safetensors` in `dir`.
pub fn save(model: &Model, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let hf = HfConfig::from_model_config(&model.config)?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&hf)?)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert("model.embed_tokens.weight".into(), model.embedding.clone());
    tensors.insert("model.norm.weight".into(), model.norm.clone());
    if !model.config.tied_embeddings {
        tensors.insert("lm_head.weight".into(), model.head.weight().clone());
    }
    for (l, b) in model.blocks.iter().enumerate() {
        let p = format!("model.layers.{l}");
        tensors.insert(format!("{p}.input_layernorm.weight"), b.attn_norm.clone());
        tensors.insert(
            format!("{p}.post_attention_layernorm.weight"),
            b.mlp_norm.clone(),
        );
        for linear in [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down] {
            tensors.insert(format!("{}.weight", linear.name), linear.weight().clone());
            if let Some(bias) = linear.bias() {
                tensors.insert(format!("{}.bias", linear.name), bias.clone());
            }
        }
        if let Some((qn, kn)) = &b.qk_norm {
            tensors.insert(format!("{p}.self_attn.q_norm.weight"), qn.clone());
            tensors.insert(format!("{p}.self_attn.k_norm.weight"), kn.clone());
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

/// Reorders the rows of a q or k projection `[heads * head_dim, in]` from
/// interleaved RoPE pairs (2j, 2j+1) to half-split pairs (j, j + head_dim/2), the
/// permutation Meta-to-Hugging-Face conversions apply; attention scores are
/// unchanged because q and k are permuted alike.
pub fn interleaved_to_half_split(weight: &Tensor, head_dim: usize) -> Result<Tensor> {
    let (rows, _) = weight.dims2()?;
    let half = head_dim / 2;
    let order: Vec<u32> = (0..rows / head_dim)
        .flat_map(|h| {
            (0..head_dim).map(move |r| {
                let src = if r < half { 2 * r } else { 2 * (r - half) + 1 };
                (h * head_dim + src) as u32
            })
        })
        .collect();
    let index = Tensor::new(order.as_slice(), weight.device())?;
    Ok(weight.index_select(&index, 0)?)
}
