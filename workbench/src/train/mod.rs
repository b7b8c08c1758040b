//! Training decoders: deterministic initialisation, checkpointable AdamW and
//! Muon, fake quantization for quantization-aware training, the learning-rate
//! schedule and the resumable training loop.

pub mod adamw;
pub mod checkpoint;
pub mod fake_quant;
pub mod init;
pub mod muon;
pub mod optimizer;
pub mod schedule;
pub mod session;
pub mod trainer;
