//! Custom ops of the workbench, each with one plain CPU reference and fast
//! paths (CPU SIMD; CUDA behind the `cuda` feature; Metal behind `metal`) that
//! are tested against it.
//!
//! - [`philox`]: the counter-based generator every backend reproduces bit for
//!   bit.
//! - [`hadamard`]: the fast normalised Hadamard transform of orders m·2^k, as
//!   candle ops (out of place with backward, and in place).
//! - [`quant`]: fused rotation and int8/int4 quantization, dequantization and
//!   fake quantization with a straight-through backward.
//! - [`stats`]: per-channel count, mean, central moments and absmax in
//!   mergeable partials.
//! - [`sample`]: Gumbel-max sampling with Philox noise, bit-identical across
//!   backends.
//! - [`gemm`]: the W8A8 matrix product (int8 × int8 → int32 → scaled f32) with
//!   a selectable order of output tiles.

#[cfg(feature = "cuda")]
#[doc(hidden)]
pub mod cuda;
pub mod elem;
pub mod gemm;
pub mod hadamard;
#[cfg(feature = "metal")]
mod metal;
// What the Metal backend dispatches, as data; built on every platform so
// that the host emulator of the Metal kernels (tests/msl_group_check.rs)
// runs the same dispatches.
#[doc(hidden)]
pub mod metal_plan;
pub mod philox;
pub mod quant;
pub mod sample;
pub mod stats;
#[doc(hidden)]
pub mod test_support;

#[cfg(test)]
pub(crate) mod testing;
