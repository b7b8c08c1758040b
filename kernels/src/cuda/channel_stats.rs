//! Channel statistics on CUDA (kernel in `channel_stats.cu`).

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::hadamard::dtype_name;
use super::{alloc, cfg, dptr, launch, storage_ptr, CHANNEL_STATS};
use crate::stats::{ChannelStats, FIELDS};

pub(crate) fn partials(
    op: &ChannelStats,
    s: &CudaStorage,
    layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (rows, channels, blocks) = op.check(layout)?;
    let dev = s.device.clone();
    let (x, _) = storage_ptr(s, layout.start_offset())?;
    let out = alloc::<f32>(&dev, blocks * channels * FIELDS)?;
    let o = dptr(&dev, &out, 0);
    launch!(
        dev,
        CHANNEL_STATS,
        format!("channel_stats_{}", dtype_name(s.dtype())?),
        cfg(
            (channels.div_ceil(256) as u32, blocks as u32),
            256,
            (op.block_rows.min(8192) * 4) as u32
        ),
        x,
        o,
        rows as i64,
        channels as i32,
        op.block_rows as i32
    );
    Ok((
        CudaStorage::wrap_cuda_slice(out, dev),
        Shape::from((blocks, channels, FIELDS)),
    ))
}
