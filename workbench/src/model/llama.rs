//! A Llama-family decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP,
//! tied or untied head, optional per-head q/k norm (Qwen3).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, D};

use super::cache::KvCache;
use super::config::{ModelConfig, RopeStyle};
use super::kv_quant::KvQuant;
use super::linear::{Linear, Observer};
use super::weights::Weights;

/// One transformer block.
#[derive(Clone)]
pub struct Block {
    /// RMSNorm gain before attention.
    pub attn_norm: Tensor,
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Attention output projection.
    pub o: Linear,
    /// Qwen3's RMSNorm gains of queries and keys (per head dimension).
    pub qk_norm: Option<(Tensor, Tensor)>,
    /// RMSNorm gain before the MLP.
    pub mlp_norm: Tensor,
    /// SwiGLU gate projection (llama2.c's w1).
    pub gate: Linear,
    /// SwiGLU up projection (w3).
    pub up: Linear,
    /// MLP down projection (w2).
    pub down: Linear,
}

/// A decoder with its weights.
#[derive(Clone)]
pub struct Model {
    /// The architecture.
    pub config: ModelConfig,
    /// Token embedding `[vocab, dim]`.
    pub embedding: Tensor,
    /// The blocks in order.
    pub blocks: Vec<Block>,
    /// Final RMSNorm gain.
    pub norm: Tensor,
    /// Output head `[vocab, dim]` (a copy of the embedding when tied).
    pub head: Linear,
    /// Use only operations with gradients (for training). candle's fused RMSNorm
    /// and RoPE kernels have no backward pass; the composite forms compute the
    /// same functions, up to float rounding.
    pub differentiable: bool,
    /// KV-cache fake quantization (and online key rotation), if any.
    pub kv_quant: Option<KvQuant>,
    cos: Tensor,
    sin: Tensor,
}

impl Model {
    /// Builds the model from named weights; every tensor's shape is checked and
    /// any tensor left over is an error (a mismatched config).
    pub fn from_weights(config: ModelConfig, mut w: Weights) -> Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let c = &config;
        let (dim, hidden, q_dim, kv_dim) = (c.dim, c.hidden_dim, c.q_dim(), c.kv_dim());
        let embedding = w.take("model.embed_tokens.weight", &[c.vocab_size, dim])?;
        let device = embedding.device().clone();
        let mut blocks = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let p = format!("model.layers.{l}");
            let mut linear = |name: &str, shape: [usize; 2]| -> Result<Linear> {
                let full = format!("{p}.{name}");
                Ok(Linear::new(
                    full.clone(),
                    w.take(&format!("{full}.weight"), &shape)?,
                ))
            };
            let mut q = linear("self_attn.q_proj", [q_dim, dim])?;
            let mut k = linear("self_attn.k_proj", [kv_dim, dim])?;
            let mut v = linear("self_attn.v_proj", [kv_dim, dim])?;
            let o = linear("self_attn.o_proj", [dim, q_dim])?;
            let gate = linear("mlp.gate_proj", [hidden, dim])?;
            let up = linear("mlp.up_proj", [hidden, dim])?;
            let down = linear("mlp.down_proj", [dim, hidden])?;
            if c.attention_bias {
                q = q.with_bias(w.take(&format!("{p}.self_attn.q_proj.bias"), &[q_dim])?);
                k = k.with_bias(w.take(&format!("{p}.self_attn.k_proj.bias"), &[kv_dim])?);
                v = v.with_bias(w.take(&format!("{p}.self_attn.v_proj.bias"), &[kv_dim])?);
            }
            let qk_norm = if c.qk_norm {
                Some((
                    w.take(&format!("{p}.self_attn.q_norm.weight"), &[c.head_dim])?,
                    w.take(&format!("{p}.self_attn.k_norm.weight"), &[c.head_dim])?,
                ))
            } else {
                None
            };
            blocks.push(Block {
                attn_norm: w.take(&format!("{p}.input_layernorm.weight"), &[dim])?,
                mlp_norm: w.take(&format!("{p}.post_attention_layernorm.weight"), &[dim])?,
                q,
                k,
                v,
                o,
                qk_norm,
                gate,
                up,
                down,
            });
        }
        let norm = w.take("model.norm.weight", &[dim])?;
        let head_weight = if c.tied_embeddings {
            embedding.clone()
        } else {
            w.take("lm_head.weight", &[c.vocab_size, dim])?
        };
        let left = w.names();
        if !left.is_empty() {
            anyhow::bail!(
                "{}: unexpected tensors for this config: {}",
                w.source,
                left.join(", ")
            );
        }
        let (cos, sin) = rope_tables(c, &device)?;
        Ok(Model {
            config,
            embedding,
            blocks,
            norm,
            head: Linear::new("lm_head", head_weight),
            differentiable: false,
            kv_quant: None,
            cos,
            sin,
        })
    }

    /// Every linear layer, in forward order, for a study to configure.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = Vec::new();
        for b in self.blocks.iter_mut() {
            all.extend([
                &mut b.q,
                &mut b.k,
                &mut b.v,
                &mut b.o,
                &mut b.gate,
                &mut b.up,
                &mut b.down,
            ]);
        }
        all.push(&mut self.head);
        all
    }

    /// Logits `[batch, tokens, vocab]` for `tokens` (`[batch, tokens]`, u32) at
    /// positions `cache.len()..`, appending their keys and values to `cache`.
    /// One token is a decode step; several are a prefill or a verification pass.
    pub fn forward(
        &self,
        tokens: &Tensor,
        cache: &mut KvCache,
        observer: Option<&dyn Observer>,
    ) -> Result<Tensor> {
        let (batch, len) = tokens.dims2().context("tokens must be [batch, tokens]")?;
        let start = cache.len();
        if start + len > self.config.max_seq_len {
            anyhow::bail!(
                "positions {start}..{} exceed the model's max_seq_len {}",
                start + len,
                self.config.max_seq_len
            );
        }
        let mut x = self
            .embedding
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((batch, len, self.config.dim))?;
        let mask = causal_mask(len, start, x.device())?;
        let cos = self.cos.narrow(0, start, len)?;
        let sin = self.sin.narrow(0, start, len)?;
        for (l, block) in self.blocks.iter().enumerate() {
            x = self.block(l, block, &x, (&cos, &sin), mask.as_ref(), cache, observer)?;
            if let Some(o) = observer {
                o.residual(l, &x)?;
            }
        }
        let x = self.rms_norm(&x, &self.norm)?;
        self.head.forward(&x, observer)
    }

    /// Logits `[1, tokens, vocab]` for the nodes of a token tree fed as one
    /// row after the cache (a verification pass over a draft tree).
    ///
    /// The cache holds `prefix` positions of a linear sequence followed by
    /// `parents.len() - tokens.len()` tree nodes fed earlier; `tokens` are the
    /// next tree nodes. `parents[i]` is node i's parent among the tree nodes
    /// (cached ones first, then `tokens`; a parent comes before its child), or
    /// `None` for a child of the prefix's last token. Node i sits at position
    /// `prefix + depth(i)` for RoPE and attends to the prefix, its ancestors
    /// and itself, so its logits are those of a causal forward over the
    /// prefix followed by its root-to-node path. The nodes' keys and values
    /// are appended to the cache; [`KvCache::keep_path`] later keeps one path.
    pub fn forward_tree(
        &self,
        tokens: &[u32],
        parents: &[Option<usize>],
        prefix: usize,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let len = tokens.len();
        let earlier = parents
            .len()
            .checked_sub(len)
            .with_context(|| format!("{len} tree nodes but only {} parents", parents.len()))?;
        if cache.len() != prefix + earlier {
            anyhow::bail!(
                "the cache holds {} positions, not the prefix {prefix} and {earlier} tree nodes",
                cache.len()
            );
        }
        let mut depth = Vec::with_capacity(parents.len());
        for (i, parent) in parents.iter().enumerate() {
            depth.push(match *parent {
                None => 0,
                Some(p) if p < i => depth[p] + 1,
                Some(p) => anyhow::bail!("tree node {i} has parent {p}, not an earlier node"),
            });
        }
        let deepest = depth.iter().max().map_or(0, |d| d + 1);
        if prefix + deepest > self.config.max_seq_len {
            anyhow::bail!(
                "tree positions up to {} exceed the model's max_seq_len {}",
                prefix + deepest,
                self.config.max_seq_len
            );
        }
        let device = self.embedding.device();
        let ids = Tensor::new(tokens, device)?;
        let mut x = self
            .embedding
            .index_select(&ids, 0)?
            .reshape((1, len, self.config.dim))?;
        let positions: Vec<u32> = depth[earlier..]
            .iter()
            .map(|d| (prefix + d) as u32)
            .collect();
        let positions = Tensor::new(positions.as_slice(), device)?;
        let cos = self.cos.index_select(&positions, 0)?;
        let sin = self.sin.index_select(&positions, 0)?;
        let mask = tree_mask(parents, earlier, prefix, device)?;
        for (l, block) in self.blocks.iter().enumerate() {
            x = self.block(l, block, &x, (&cos, &sin), Some(&mask), cache, None)?;
        }
        let x = self.rms_norm(&x, &self.norm)?;
        self.head.forward(&x, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        layer: usize,
        b: &Block,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        observer: Option<&dyn Observer>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (batch, len, _) = x.dims3()?;
        let h = self.rms_norm(x, &b.attn_norm)?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, len, n, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let mut q = heads(b.q.forward(&h, observer)?, c.n_heads)?;
        let mut k = heads(b.k.forward(&h, observer)?, c.n_kv_heads)?;
        let v = heads(b.v.forward(&h, observer)?, c.n_kv_heads)?;
        if let Some((qn, kn)) = &b.qk_norm {
            q = self.rms_norm(&q, qn)?;
            k = self.rms_norm(&k, kn)?;
        }
        let (q, k) = (self.rope(&q, cos, sin)?, self.rope(&k, cos, sin)?);
        let (q, k, v) = match &self.kv_quant {
            Some(kv) => kv.apply(q, k, v)?,
            None => (q, k, v),
        };
        let (k, v) = cache.append(layer, k, v)?;
        // Grouped-query attention: query head h reads key/value head h / group.
        let group = c.n_heads / c.n_kv_heads;
        let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = if self.differentiable {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let attn = weights.matmul(&v)?;
        let attn = attn.transpose(1, 2)?.reshape((batch, len, c.q_dim()))?;
        let x = (x + b.o.forward(&attn, observer)?)?;
        let h = self.rms_norm(&x, &b.mlp_norm)?;
        let gated = (candle_nn::ops::silu(&b.gate.forward(&h, observer)?)?
            * b.up.forward(&h, observer)?)?;
        Ok((x + b.down.forward(&gated, observer)?)?)
    }
}

impl Model {
    /// RMSNorm over the last dimension with gain `weight`.
    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let eps = self.config.norm_eps;
        if self.differentiable {
            let scale = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
            return Ok(x.broadcast_mul(&scale)?.broadcast_mul(weight)?);
        }
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            weight,
            eps as f32,
        )?)
    }

    /// Rotary embedding of `x` `[batch, heads, tokens, head_dim]` with tables
    /// `[tokens, head_dim / 2]`.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if !self.differentiable {
            return Ok(match self.config.rope_style {
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
                RopeStyle::HalfSplit => candle_nn::rotary_emb::rope(x, cos, sin)?,
            });
        }
        let (b, h, t, d) = x.dims4()?;
        let (cos, sin) = (
            cos.reshape((1, 1, t, d / 2))?,
            sin.reshape((1, 1, t, d / 2))?,
        );
        let rotate = |x0: &Tensor, x1: &Tensor| -> Result<(Tensor, Tensor)> {
            let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
            let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
            Ok((y0, y1))
        };
        Ok(match self.config.rope_style {
            RopeStyle::Interleaved => {
                let pairs = x.reshape((b, h, t, d / 2, 2))?;
                let x0 = pairs.narrow(4, 0, 1)?.squeeze(4)?;
                let x1 = pairs.narrow(4, 1, 1)?.squeeze(4)?;
                let (y0, y1) = rotate(&x0, &x1)?;
                Tensor::stack(&[y0, y1], 4)?.reshape((b, h, t, d))?
            }
            RopeStyle::HalfSplit => {
                let x0 = x.narrow(3, 0, d / 2)?;
                let x1 = x.narrow(3, d / 2, d / 2)?;
                let (y0, y1) = rotate(&x0, &x1)?;
                Tensor::cat(&[y0, y1], 3)?
            }
        })
    }
}

/// Repeats each key/value head `n` times along the head axis.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, heads, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, heads, n, t, d))?
        .reshape((b, heads * n, t, d))?)
}

/// Additive mask `[len, start + len]`: query i sees positions up to start + i.
fn causal_mask(len: usize, start: usize, device: &Device) -> Result<Option<Tensor>> {
    if len == 1 {
        return Ok(None);
    }
    let total = start + len;
    let values: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= start + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(values, (len, total), device)?))
}

/// Additive mask `[new, prefix + nodes]` of the tree nodes from `earlier` on:
/// node i sees the prefix, its ancestors and itself.
fn tree_mask(
    parents: &[Option<usize>],
    earlier: usize,
    prefix: usize,
    device: &Device,
) -> Result<Tensor> {
    let nodes = parents.len();
    let total = prefix + nodes;
    let mut values = vec![f32::NEG_INFINITY; (nodes - earlier) * total];
    for (row, i) in (earlier..nodes).enumerate() {
        let line = &mut values[row * total..(row + 1) * total];
        line[..prefix].fill(0.0);
        let mut node = Some(i);
        while let Some(n) = node {
            line[prefix + n] = 0.0;
            node = parents[n];
        }
    }
    Ok(Tensor::from_vec(values, (nodes - earlier, total), device)?)
}

/// cos and sin of position × frequency, `[max_seq_len, head_dim / 2]`, with
/// frequency j = theta^(-2j / head_dim) (run.c's and Hugging Face's convention).
fn rope_tables(c: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = c.head_dim / 2;
    let mut cos = Vec::with_capacity(c.max_seq_len * half);
    let mut sin = Vec::with_capacity(c.max_seq_len * half);
    for pos in 0..c.max_seq_len {
        for j in 0..half {
            let freq = 1.0 / c.rope_theta.powf((2 * j) as f64 / c.head_dim as f64);
            let angle = pos as f64 * freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (c.max_seq_len, half), device)?.to_dtype(DType::F32)?,
        Tensor::from_vec(sin, (c.max_seq_len, half), device)?,
    ))
}

/// The last position's logits of each batch row, `[batch, vocab]`.
pub fn last_logits(logits: &Tensor) -> Result<Tensor> {
    let len = logits.dim(1)?;
    Ok(logits.narrow(1, len - 1, 1)?.squeeze(1)?)
}

/// Index of the largest logit along the last dimension.
pub fn argmax_last(logits: &Tensor) -> Result<Tensor> {
    Ok(logits.argmax(D::Minus1)?)
}
