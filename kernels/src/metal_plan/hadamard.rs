//! The Hadamard transform's passes (`hadamard.metal`): butterflies inside
//! threadgroup blocks, the levels across blocks when a chunk exceeds one
//! block, and the m × m mix when m > 1.

use candle_core::{bail, DType, Result};

use super::{dtype_name, params, size, Arg, Buf, Module, Pass, Plan, Upload};
use crate::hadamard::{Direction, HadamardOp};

params!(
    /// `FwhtParams` of `hadamard.metal`.
    FwhtParams {
        n: u32,
        block: u32,
        rows: u32,
        chunks: u32,
        scale: f32,
        final_: u32,
        signs_after: u32,
        has_signs: u32,
    }
);

params!(
    /// `MixParams` of `hadamard.metal`.
    MixParams {
        rows: u32,
        m: u32,
        m8: u32,
        s: u32,
        scale: f32,
        signs_after: u32,
        has_signs: u32,
    }
);

/// Largest threadgroup block (elements of f32 in 16 KiB).
pub const BLOCK: usize = 4096;

/// Bytes of threadgroup memory for a block of `block` f32: Metal requires
/// a multiple of 16 bytes, which `block * 4` is not for blocks of 1 or 2
/// (the orders with s = 1 or 2: n = 1, 2, 12, 20, 24, ...).
pub fn block_memory(block: usize) -> usize {
    (block * 4).next_multiple_of(16)
}

/// The plan of `HadamardOp` out of place: input 0 (`rows` rows, `dtype`)
/// into output 0 (the same shape and dtype).
pub fn forward(op: &HadamardOp, dtype: DType, rows: usize) -> Result<Plan> {
    let mut plan = Plan::default();
    let y = plan.output(rows * op.plan().n(), dtype, "wb_hadamard");
    if rows > 0 {
        transform(&mut plan, op, Buf::Input(0), dtype, y, dtype, rows)?;
    }
    Ok(plan)
}

/// The plan of `HadamardOp` in place on input 0.
pub fn inplace(op: &HadamardOp, dtype: DType, rows: usize) -> Result<Plan> {
    let mut plan = Plan::default();
    if rows > 0 {
        let x = Buf::Input(0);
        transform(&mut plan, op, x, dtype, x, dtype, rows)?;
    }
    Ok(plan)
}

/// Appends to `plan` the passes that transform `rows` rows of `x` (dtype
/// `dtype`) into `y` (dtype `out`; `y` may be `x`).
pub fn transform(
    plan: &mut Plan,
    op: &HadamardOp,
    x: Buf,
    dtype: DType,
    y: Buf,
    out: DType,
    rows: usize,
) -> Result<()> {
    let hp = op.plan();
    let (n, m, s) = (hp.n(), hp.m(), hp.s());
    if s > 1 << 15 {
        bail!("hadamard: Metal supports power-of-two factors up to 2^15, got {s}");
    }
    let signs = op
        .signs_arc()
        .map(|a| plan.upload(Upload::KeptF32(a.clone())));
    let transposed = op.direction() == Direction::Transposed;
    let block = s.min(BLOCK);
    let one_pass = m == 1 && s == block;
    let mid = if one_pass {
        y
    } else {
        plan.temp(rows * n, DType::F32, "wb_hadamard_mid")
    };
    let tin = dtype_name(dtype)?;
    let tout = dtype_name(out)?;
    let chunk_rows = rows * m;
    let params = FwhtParams {
        n: s as u32,
        block: block as u32,
        rows: chunk_rows as u32,
        chunks: m as u32,
        scale: hp.scale(),
        final_: one_pass as u32,
        signs_after: transposed as u32,
        has_signs: signs.is_some() as u32,
    };
    // Without signs the kernels never read slot 2 (or the mix's slot 3).
    let signs_arg = match signs {
        Some(b) => Arg::Read(b, 0),
        None => Arg::Unread(x),
    };
    // Pass 1: butterflies inside blocks (the whole transform when one_pass).
    // Forward signs go on at load; transposed ones at the very end (here
    // only when this pass is the end).
    let p1 = FwhtParams {
        signs_after: (one_pass && transposed) as u32,
        has_signs: (signs.is_some() && (one_pass || !transposed)) as u32,
        ..params
    };
    plan.passes.push(Pass {
        module: Module::Hadamard,
        kernel: format!("fwht_block_{tin}_{}", if one_pass { tout } else { "f32" }),
        threadgroups: size(chunk_rows * (s / block), 1),
        threads: size(256, 1),
        args: vec![
            (0, Arg::Read(x, 0)),
            (1, Arg::Write(mid, 0)),
            (2, signs_arg.clone()),
            (3, Arg::Bytes(p1.bytes())),
        ],
        threadgroup_memory: vec![(0, block_memory(block))],
    });
    if one_pass {
        return Ok(());
    }
    // Pass 2: levels across blocks; it finishes the transform when m = 1.
    if s > block {
        let fin = m == 1;
        let p2 = FwhtParams {
            final_: fin as u32,
            signs_after: 1,
            has_signs: (fin && transposed && signs.is_some()) as u32,
            ..params
        };
        plan.passes.push(Pass {
            module: Module::Hadamard,
            kernel: format!("fwht_cross_{}", if fin { tout } else { "f32" }),
            threadgroups: size((chunk_rows * block).div_ceil(256), 1),
            threads: size(256, 1),
            args: vec![
                (0, Arg::Write(mid, 0)),
                (1, Arg::Write(if fin { y } else { mid }, 0)),
                (2, signs_arg.clone()),
                (3, Arg::Bytes(p2.bytes())),
            ],
            threadgroup_memory: vec![],
        });
        if fin {
            return Ok(());
        }
    }
    // Pass 3: the m×m mix, scale, transposed signs.
    let m8 = m.div_ceil(8) * 8;
    let mix = plan.upload(Upload::KeptF32(hp.gpu_mix_matrix(op.direction()).clone()));
    let mp = MixParams {
        rows: rows as u32,
        m: m as u32,
        m8: m8 as u32,
        s: s as u32,
        scale: hp.scale(),
        signs_after: transposed as u32,
        has_signs: signs.is_some() as u32,
    };
    plan.passes.push(Pass {
        module: Module::Hadamard,
        kernel: format!("mix_{tout}"),
        threadgroups: size((rows * s).div_ceil(32), m.div_ceil(8)),
        threads: size(32, 8),
        args: vec![
            (0, Arg::Read(mid, 0)),
            (1, Arg::Write(y, 0)),
            (2, Arg::Read(mix, 0)),
            (3, signs_arg),
            (4, Arg::Bytes(mp.bytes())),
        ],
        threadgroup_memory: vec![],
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threadgroup_memory_is_a_multiple_of_16_bytes() {
        for k in 0..=12 {
            let b = 1usize << k;
            let len = block_memory(b);
            assert!(
                len.is_multiple_of(16) && len >= 4 * b && len < 4 * b + 16,
                "{b}"
            );
        }
    }
}
