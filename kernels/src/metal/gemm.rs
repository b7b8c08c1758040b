//! W8A8 GEMM on Metal (kernel in `gemm.metal`): one threadgroup per 64 × 64
//! tile, dispatched in the schedule's order through a buffer of its tile map.
//! Not run here (no Apple GPU): `tests/gemm_parity.rs` checks it on a Mac.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{bail, DType, Layout, MetalDevice, MetalStorage, Result, Shape};
use candle_metal_kernels::metal::Buffer;

use super::{dispatch, pipeline, size, GEMM_W8A8};
use crate::gemm::{check_scales, dims, tile_map, GemmConfig, METAL_TILE};

#[repr(C)]
#[derive(Clone, Copy)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    scaled: u32,
}

/// The device copy of a tile map, per device and map.
fn upload_map(dev: &MetalDevice, map: &Arc<[u32]>) -> Result<Arc<Buffer>> {
    type Key = (candle_core::metal_backend::DeviceId, usize);
    // The host map is kept so that its address, the key, is not reused.
    type Maps = HashMap<Key, (Arc<[u32]>, Arc<Buffer>)>;
    static CACHE: Mutex<Option<Maps>> = Mutex::new(None);
    let key = (dev.id(), Arc::as_ptr(map) as *const u32 as usize);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((_, b)) = cache.get(&key) {
        return Ok(b.clone());
    }
    let b = dev.new_buffer_with_data(&map[..])?;
    cache.insert(key, (map.clone(), b.clone()));
    Ok(b)
}

pub(crate) fn gemm(
    c: &GemmConfig,
    a: &MetalStorage,
    la: &Layout,
    b: &MetalStorage,
    lb: &Layout,
    scales: Option<(&MetalStorage, &Layout)>,
) -> Result<(MetalStorage, Shape)> {
    let (m, n, k) = dims(la, lb)?;
    c.check()?;
    if (c.tile_m, c.tile_n) != METAL_TILE || c.tile_k != 32 {
        bail!(
            "gemm_w8a8 (Metal): the kernel's tile is {}x{}x32, got {}x{}x{}",
            METAL_TILE.0,
            METAL_TILE.1,
            c.tile_m,
            c.tile_n,
            c.tile_k
        );
    }
    if a.dtype() != DType::U8 || b.dtype() != DType::U8 {
        bail!("gemm_w8a8: A and B must be u8 (int8 codes)");
    }
    if let Some((s, l)) = scales {
        check_scales(l, m, n)?;
        if s.dtype() != DType::F32 {
            bail!("gemm_w8a8: scales must be f32");
        }
    }
    let dev = a.device().clone();
    let (tm, tn) = c.grid(m, n);
    let map = upload_map(&dev, &tile_map(c.schedule, tm, tn)?)?;
    let dtype = if scales.is_some() {
        DType::F32
    } else {
        DType::I32
    };
    let out = dev.new_buffer(m * n, dtype, "wb_gemm_w8a8")?;
    let params = GemmParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        scaled: u32::from(scales.is_some()),
    };
    let p = pipeline(&dev, GEMM_W8A8, "gemm_w8a8")?;
    dispatch(&dev, &p, size(tm * tn, 1), size(256, 1), |e| {
        e.set_input_buffer(0, Some(a.buffer()), la.start_offset());
        e.set_input_buffer(1, Some(b.buffer()), lb.start_offset());
        e.set_input_buffer(2, Some(&map), 0);
        match scales {
            Some((s, l)) => e.set_input_buffer(3, Some(s.buffer()), l.start_offset() * 4),
            // Never read when unscaled; any buffer binds the slot.
            None => e.set_input_buffer(3, Some(&map), 0),
        }
        e.set_output_buffer(4, Some(&out), 0);
        e.set_bytes(5, &params);
    })?;
    Ok((
        MetalStorage::new(out, dev, m * n, dtype),
        Shape::from((m, n)),
    ))
}
