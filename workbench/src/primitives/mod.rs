//! Primitives the studies are built from: distributions and their families,
//! sampling tables, acceptance rules, and statistics.

pub mod acceptance;
pub mod alias;
pub mod channel_stats;
pub mod distribution;
pub mod families;
pub mod hadamard;
pub mod quant;
pub mod rotation;
pub mod stats;
