//! The CPU kernels: blocks of rows over rayon's threads, each rotated into an
//! f32 buffer (see [`HadamardOp`]) and quantized group by group while in cache.

use rayon::prelude::*;

use super::{code, group_scale, Bits, QuantConfig};
use crate::elem::Elem;
use crate::hadamard::HadamardOp;

/// Codes and scales of the rows of `x`: `codes` holds `bits.row_bytes(n)`
/// bytes per row, `scales` n/group floats per row.
pub(crate) fn quantize_rows<T: Elem>(
    op: &HadamardOp,
    cfg: &QuantConfig,
    group: usize,
    x: &[T],
    codes: &mut [u8],
    scales: &mut [f32],
) {
    let n = op.plan().n();
    let rows_per_block = op.plan().rows_per_block();
    let (bytes, groups) = (cfg.bits.row_bytes(n), n / group);
    codes
        .par_chunks_mut(rows_per_block * bytes)
        .zip(scales.par_chunks_mut(rows_per_block * groups))
        .zip(x.par_chunks(rows_per_block * n))
        .for_each_init(
            || (op.plan().scratch(), Vec::new()),
            |(scratch, buf), ((codes, scales), x)| {
                op.rotate_f32(x, buf, scratch);
                for ((y, c), s) in buf
                    .chunks_exact(n)
                    .zip(codes.chunks_exact_mut(bytes))
                    .zip(scales.chunks_exact_mut(groups))
                {
                    quantize_row(y, cfg, group, c, s);
                }
            },
        );
}

/// One rotated row into codes and scales.
fn quantize_row(y: &[f32], cfg: &QuantConfig, group: usize, codes: &mut [u8], scales: &mut [f32]) {
    let qmax = cfg.bits.qmax();
    let group_bytes = cfg.bits.row_bytes(group);
    for ((yg, cg), s) in y
        .chunks_exact(group)
        .zip(codes.chunks_exact_mut(group_bytes))
        .zip(scales.iter_mut())
    {
        let absmax = yg.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (scale, inv) = group_scale(absmax, cfg);
        *s = scale;
        match cfg.bits {
            Bits::Int8 => {
                for (c, &v) in cg.iter_mut().zip(yg) {
                    *c = code(v, inv, qmax) as i8 as u8;
                }
            }
            Bits::Int4 => {
                for (c, pair) in cg.iter_mut().zip(yg.chunks_exact(2)) {
                    let lo = code(pair[0], inv, qmax) as u8 & 0x0f;
                    let hi = code(pair[1], inv, qmax) as u8 & 0x0f;
                    *c = lo | (hi << 4);
                }
            }
        }
    }
}

/// The value of code `i` of a row (sign-extended from 4 or 8 bits).
#[inline(always)]
pub(crate) fn unpack(codes: &[u8], i: usize, bits: Bits) -> i32 {
    match bits {
        Bits::Int8 => codes[i] as i8 as i32,
        Bits::Int4 => {
            let nibble = (codes[i / 2] >> (4 * (i % 2))) & 0x0f;
            ((nibble << 4) as i8 >> 4) as i32
        }
    }
}

/// code·scale for every element of the rows.
pub(crate) fn dequantize_rows<T: Elem>(
    cfg: &QuantConfig,
    n: usize,
    group: usize,
    codes: &[u8],
    scales: &[f32],
    out: &mut [T],
) {
    let (bytes, groups) = (cfg.bits.row_bytes(n), n / group);
    out.par_chunks_mut(n)
        .zip(codes.par_chunks(bytes))
        .zip(scales.par_chunks(groups))
        .for_each(|((o, c), s)| {
            for (i, v) in o.iter_mut().enumerate() {
                *v = T::from_f32(unpack(c, i, cfg.bits) as f32 * s[i / group]);
            }
        });
}

/// The fake-quantized rotation Q(Hx) = code·scale, written as T.
pub(crate) fn fake_quant_rows<T: Elem>(
    op: &HadamardOp,
    cfg: &QuantConfig,
    group: usize,
    x: &[T],
    out: &mut [T],
) {
    let n = op.plan().n();
    let block = op.plan().rows_per_block() * n;
    let qmax = cfg.bits.qmax();
    out.par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .for_each_init(
            || (op.plan().scratch(), Vec::new()),
            |(scratch, buf), (o, x)| {
                op.rotate_f32(x, buf, scratch);
                for (og, yg) in o.chunks_exact_mut(group).zip(buf.chunks_exact(group)) {
                    let absmax = yg.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let (scale, inv) = group_scale(absmax, cfg);
                    for (v, &y) in og.iter_mut().zip(yg) {
                        *v = T::from_f32(code(y, inv, qmax) as f32 * scale);
                    }
                }
            },
        );
}
