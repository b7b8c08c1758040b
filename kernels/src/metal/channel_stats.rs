//! Channel statistics on Metal (kernel in `channel_stats.metal`).

use candle_core::backend::BackendStorage;
use candle_core::{DType, Layout, MetalStorage, Result, Shape};

use super::hadamard::dtype_name;
use super::{dispatch, pipeline, size, CHANNEL_STATS};
use crate::stats::{ChannelStats, FIELDS};

#[repr(C)]
#[derive(Clone, Copy)]
struct StatsParams {
    rows: u64,
    channels: u32,
    block_rows: u32,
}

pub(crate) fn partials(
    op: &ChannelStats,
    s: &MetalStorage,
    layout: &Layout,
) -> Result<(MetalStorage, Shape)> {
    let (rows, channels, blocks) = op.check(layout)?;
    let dev = s.device().clone();
    let count = blocks * channels * FIELDS;
    let out = dev.new_buffer(count, DType::F32, "wb_channel_stats")?;
    let params = StatsParams {
        rows: rows as u64,
        channels: channels as u32,
        block_rows: op.block_rows as u32,
    };
    let p = pipeline(
        &dev,
        CHANNEL_STATS,
        &format!("channel_stats_{}", dtype_name(s.dtype())?),
    )?;
    dispatch(
        &dev,
        &p,
        size(channels.div_ceil(256), blocks),
        size(256, 1),
        |e| {
            e.set_input_buffer(
                0,
                Some(s.buffer()),
                layout.start_offset() * s.dtype().size_in_bytes(),
            );
            e.set_output_buffer(1, Some(&out), 0);
            e.set_bytes(2, &params);
        },
    )?;
    Ok((
        MetalStorage::new(out, dev, count, DType::F32),
        Shape::from((blocks, channels, FIELDS)),
    ))
}
