//! Deterministic initial weights for a decoder: every value a pure function of
//! (seed, tensor, element), whatever the thread count.

use std::f64::consts::TAU;

use anyhow::Result;
use candle_core::{Device, Tensor};
use wb_kernels::philox;

use crate::model::config::ModelConfig;
use crate::model::weights::Weights;

/// Stream of the initialisation noise.
const STREAM_INIT: u32 = 0x0006_0000;

/// Names and shapes of every tensor of a decoder, in a fixed order.
pub fn tensor_shapes(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab_size, c.dim],
    )];
    for l in 0..c.n_layers {
        let p = format!("model.layers.{l}");
        t.push((format!("{p}.input_layernorm.weight"), vec![c.dim]));
        t.push((
            format!("{p}.self_attn.q_proj.weight"),
            vec![c.q_dim(), c.dim],
        ));
        t.push((
            format!("{p}.self_attn.k_proj.weight"),
            vec![c.kv_dim(), c.dim],
        ));
        t.push((
            format!("{p}.self_attn.v_proj.weight"),
            vec![c.kv_dim(), c.dim],
        ));
        t.push((
            format!("{p}.self_attn.o_proj.weight"),
            vec![c.dim, c.q_dim()],
        ));
        if c.attention_bias {
            t.push((format!("{p}.self_attn.q_proj.bias"), vec![c.q_dim()]));
            t.push((format!("{p}.self_attn.k_proj.bias"), vec![c.kv_dim()]));
            t.push((format!("{p}.self_attn.v_proj.bias"), vec![c.kv_dim()]));
        }
        if c.qk_norm {
            t.push((format!("{p}.self_attn.q_norm.weight"), vec![c.head_dim]));
            t.push((format!("{p}.self_attn.k_norm.weight"), vec![c.head_dim]));
        }
        t.push((format!("{p}.post_attention_layernorm.weight"), vec![c.dim]));
        t.push((
            format!("{p}.mlp.gate_proj.weight"),
            vec![c.hidden_dim, c.dim],
        ));
        t.push((format!("{p}.mlp.up_proj.weight"), vec![c.hidden_dim, c.dim]));
        t.push((
            format!("{p}.mlp.down_proj.weight"),
            vec![c.dim, c.hidden_dim],
        ));
    }
    t.push(("model.norm.weight".to_string(), vec![c.dim]));
    if !c.tied_embeddings {
        t.push(("lm_head.weight".to_string(), vec![c.vocab_size, c.dim]));
    }
    t
}

/// GPT-2-style initial weights: norms 1, biases 0, matrices N(0, 0.02²), and the two
/// projections that write into the residual stream scaled by 1/sqrt(2 layers) so
/// the stream's variance does not grow with depth.
pub fn init_weights(c: &ModelConfig, seed: u64, device: &Device) -> Result<Weights> {
    let mut weights = Weights::new("initialisation");
    for (k, (name, shape)) in tensor_shapes(c).into_iter().enumerate() {
        let count: usize = shape.iter().product();
        let tensor = if name.ends_with("norm.weight") {
            Tensor::ones(shape.as_slice(), candle_core::DType::F32, device)?
        } else if name.ends_with(".bias") {
            Tensor::zeros(shape.as_slice(), candle_core::DType::F32, device)?
        } else {
            let residual = name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight");
            let std = if residual {
                0.02 / (2.0 * c.n_layers as f64).sqrt()
            } else {
                0.02
            };
            let values: Vec<f32> = (0..count as u64)
                .map(|i| {
                    // Box-Muller on two keyed uniforms.
                    let u1 = philox::uniform(seed, i, k as u32, STREAM_INIT);
                    let u2 = philox::uniform(seed, i, k as u32, STREAM_INIT + 1);
                    (std * (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()) as f32
                })
                .collect();
            Tensor::from_vec(values, shape.as_slice(), device)?
        };
        weights.insert(name, tensor);
    }
    Ok(weights)
}
