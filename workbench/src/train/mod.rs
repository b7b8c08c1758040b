//! Training decoders: deterministic initialisation, checkpointable AdamW, the
//! learning-rate schedule and the resumable training loop.

pub mod adamw;
pub mod init;
pub mod schedule;
pub mod trainer;
