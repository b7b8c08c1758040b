//! Llama-family decoders in candle, written out so that every linear layer and the
//! residual stream can be observed and changed by the studies.
//!
//! - [`config`]: the architecture (dimensions, RoPE style, tied head, q/k norm).
//! - [`weights`]: named tensors with shape checks that name the tensor.
//! - [`llama2c`]: loader for llama2.c's version-0 checkpoints (stories260K).
//! - [`hf`]: Hugging Face safetensors folders (Llama, Mistral, Qwen2, Qwen3,
//!   SmolLM), loaded and saved.
//! - [`linear`]: the one linear abstraction: input transform, weight and
//!   activation quantizers, observers.
//! - [`llama`]: the decoder itself; [`cache`]: its KV cache with rollback;
//!   [`kv_quant`]: fake quantization of what enters the cache.
//! - [`rotate`]: whole-model rotations by computational invariance and
//!   SmoothQuant scaling.

pub mod cache;
pub mod config;
pub mod hf;
pub mod kv_quant;
pub mod linear;
pub mod llama;
pub mod llama2c;
pub mod rotate;
pub mod sample;
pub mod transforms;
pub mod weights;
