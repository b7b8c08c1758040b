//! W8A8 GEMM on CUDA (kernel in `gemm_w8a8.cu`): one block per tile, launched
//! in the schedule's order through a device copy of its tile map.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::CudaSlice;
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape};

use super::{alloc, cfg, dptr, launch, storage_ptr, GEMM_W8A8};
use crate::gemm::{check_scales, dims, tile_map, GemmConfig, CUDA_TILES};

/// Bytes of K per pipeline stage and stages (as in the .cu file).
const BK: usize = 64;
const STAGES: usize = 4;

/// Warps per block of each compiled tile (as in the .cu file's GEMM lines).
fn threads(tile: (usize, usize)) -> u32 {
    let (wm, wn) = match tile {
        (256, 128) => (64, 64),
        (128, 128) | (128, 64) => (64, 32),
        (64, 128) | (64, 64) | (32, 128) => (32, 32),
        (16, 128) => (16, 32),
        _ => (16, 16),
    };
    ((tile.0 / wm) * (tile.1 / wn) * 32) as u32
}

/// The device copy of a tile map, per device and map (the map's cache keeps
/// the host `Arc` alive, so its address is never reused).
fn upload_map(dev: &CudaDevice, map: &Arc<[u32]>) -> Result<Arc<CudaSlice<u32>>> {
    type Key = (candle_core::cuda::DeviceId, usize);
    // The host map (kept alive) and its device copy.
    type Entry = (Arc<[u32]>, Arc<CudaSlice<u32>>);
    static CACHE: Mutex<Option<HashMap<Key, Entry>>> = Mutex::new(None);
    let key = (dev.id(), Arc::as_ptr(map) as *const u32 as usize);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((_, d)) = cache.get(&key) {
        return Ok(d.clone());
    }
    let mut d = alloc::<u32>(dev, map.len())?;
    dev.memcpy_htod(&map[..], &mut d)?;
    let d = Arc::new(d);
    cache.insert(key, (map.clone(), d.clone()));
    Ok(d)
}

pub(crate) fn gemm(
    c: &GemmConfig,
    a: &CudaStorage,
    la: &Layout,
    b: &CudaStorage,
    lb: &Layout,
    scales: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaStorage, Shape)> {
    let (m, n, k) = dims(la, lb)?;
    c.check()?;
    let tile = (c.tile_m, c.tile_n);
    if !CUDA_TILES.contains(&tile) || c.tile_k != BK {
        bail!(
            "gemm_w8a8 (CUDA): tile {}x{}x{} is not compiled; tile_k must be {BK} and (tile_m, tile_n) one of {CUDA_TILES:?}",
            c.tile_m,
            c.tile_n,
            c.tile_k
        );
    }
    if !k.is_multiple_of(16) {
        bail!("gemm_w8a8 (CUDA): K = {k} must be a multiple of 16 (16-byte rows for cp.async)");
    }
    if a.dtype() != DType::U8 || b.dtype() != DType::U8 {
        bail!("gemm_w8a8: A and B must be u8 (int8 codes)");
    }
    let dev = a.device.clone();
    let (pa, _) = storage_ptr(a, la.start_offset())?;
    let (pb, _) = storage_ptr(b, lb.start_offset())?;
    let ps = match scales {
        Some((s, l)) => {
            check_scales(l, m, n)?;
            if s.dtype() != DType::F32 {
                bail!("gemm_w8a8: scales must be f32");
            }
            storage_ptr(s, l.start_offset())?.0
        }
        None => 0u64,
    };
    let (tm, tn) = c.grid(m, n);
    let map = upload_map(&dev, &tile_map(c.schedule, tm, tn)?)?;
    let pm = dptr(&dev, &map, 0);
    let smem = (STAGES * (tile.0 + tile.1) * BK) as u32;
    let launch_cfg = cfg(((tm * tn) as u32, 1), threads(tile), smem);
    let name = |kind: &str| format!("gemm_w8a8_{kind}_{}x{}", tile.0, tile.1);
    let (m32, n32, k32) = (m as i32, n as i32, k as i32);
    let storage = if scales.is_some() {
        let out = alloc::<f32>(&dev, m * n)?;
        let po = dptr(&dev, &out, 0);
        launch!(
            dev,
            GEMM_W8A8,
            name("f32"),
            launch_cfg,
            pa,
            pb,
            pm,
            ps,
            po,
            m32,
            n32,
            k32
        );
        CudaStorage::wrap_cuda_slice(out, dev)
    } else {
        let out = alloc::<i32>(&dev, m * n)?;
        let po = dptr(&dev, &out, 0);
        launch!(
            dev,
            GEMM_W8A8,
            name("i32"),
            launch_cfg,
            pa,
            pb,
            pm,
            ps,
            po,
            m32,
            n32,
            k32
        );
        CudaStorage::wrap_cuda_slice(out, dev)
    };
    Ok((storage, Shape::from((m, n))))
}
