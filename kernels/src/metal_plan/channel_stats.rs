//! Channel statistics (`channel_stats.metal`): one thread per channel and
//! block of rows.

use candle_core::{DType, Result};

use super::{dtype_name, params, size, Arg, Buf, Module, Pass, Plan};
use crate::stats::{ChannelStats, FIELDS};

params!(
    /// `StatsParams` of `channel_stats.metal`.
    StatsParams {
        rows: u64,
        channels: u32,
        block_rows: u32,
    }
);

/// The plan of `channel_stats` of input 0, `[rows, channels]` in `dtype`:
/// output 0, the `[blocks, channels, FIELDS]` f32 partials.
pub fn partials(op: &ChannelStats, dtype: DType, rows: usize, channels: usize) -> Result<Plan> {
    let blocks = rows.div_ceil(op.block_rows);
    let mut plan = Plan::default();
    let out = plan.output(blocks * channels * FIELDS, DType::F32, "wb_channel_stats");
    let params = StatsParams {
        rows: rows as u64,
        channels: channels as u32,
        block_rows: op.block_rows as u32,
    };
    plan.passes.push(Pass {
        module: Module::ChannelStats,
        kernel: format!("channel_stats_{}", dtype_name(dtype)?),
        threadgroups: size(channels.div_ceil(256), blocks),
        threads: size(256, 1),
        args: vec![
            (0, Arg::Read(Buf::Input(0), 0)),
            (1, Arg::Write(out, 0)),
            (2, Arg::Bytes(params.bytes())),
        ],
        threadgroup_memory: vec![],
    });
    Ok(plan)
}
