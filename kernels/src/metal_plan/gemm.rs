//! The W8A8 GEMM (`gemm.metal`): one threadgroup per 64 × 64 output tile,
//! in the schedule's order through an uploaded tile map.

use candle_core::{bail, DType, Result};

use super::{params, size, Arg, Buf, Module, Pass, Plan, Upload};
use crate::gemm::{tile_map, GemmConfig, METAL_TILE};

params!(
    /// `GemmParams` of `gemm.metal`.
    GemmParams {
        m: u32,
        n: u32,
        k: u32,
        scaled: u32,
    }
);

/// Checks that `c` is valid and has the kernel's tile.
pub fn check(c: &GemmConfig) -> Result<()> {
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
    Ok(())
}

/// The plan of A `[m, k]` (input 0, int8 codes) · B `[n, k]`ᵀ (input 1)
/// into output 0, `[m, n]`: i32, or f32 when `scaled` (input 2 then holds
/// the m row scales, then the n column scales).
pub fn gemm(c: &GemmConfig, (m, n, k): (usize, usize, usize), scaled: bool) -> Result<Plan> {
    check(c)?;
    let (tm, tn) = c.grid(m, n);
    let mut plan = Plan::default();
    let map = plan.upload(Upload::KeptU32(tile_map(c.schedule, tm, tn)?));
    let dtype = if scaled { DType::F32 } else { DType::I32 };
    let out = plan.output(m * n, dtype, "wb_gemm_w8a8");
    let params = GemmParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        scaled: u32::from(scaled),
    };
    plan.passes.push(Pass {
        module: Module::GemmW8a8,
        kernel: "gemm_w8a8".into(),
        threadgroups: size(tm * tn, 1),
        threads: size(256, 1),
        args: vec![
            (0, Arg::Read(Buf::Input(0), 0)),
            (1, Arg::Read(Buf::Input(1), 0)),
            (2, Arg::Read(map, 0)),
            (
                3,
                if scaled {
                    Arg::Read(Buf::Input(2), 0)
                } else {
                    Arg::Unread(map)
                },
            ),
            (4, Arg::Write(out, 0)),
            (5, Arg::Bytes(params.bytes())),
        ],
        threadgroup_memory: vec![],
    });
    Ok(plan)
}
