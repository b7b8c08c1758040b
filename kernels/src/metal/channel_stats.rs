//! Channel statistics on Metal: the pass of
//! `crate::metal_plan::channel_stats` (kernel in `channel_stats.metal`).

use candle_core::backend::BackendStorage;
use candle_core::{DType, Layout, MetalStorage, Result, Shape};

use super::execute;
use crate::metal_plan;
use crate::stats::{ChannelStats, FIELDS};

pub(crate) fn partials(
    op: &ChannelStats,
    s: &MetalStorage,
    layout: &Layout,
) -> Result<(MetalStorage, Shape)> {
    let (rows, channels, blocks) = op.check(layout)?;
    let dev = s.device().clone();
    let plan = metal_plan::channel_stats::partials(op, s.dtype(), rows, channels)?;
    let x = (
        s.buffer(),
        layout.start_offset() * s.dtype().size_in_bytes(),
    );
    let [out] = execute(&dev, &plan, &[x])?;
    Ok((
        MetalStorage::new(out, dev, blocks * channels * FIELDS, DType::F32),
        Shape::from((blocks, channels, FIELDS)),
    ))
}
