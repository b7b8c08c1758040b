//! The Hadamard transform on Metal (kernels in `hadamard.metal`).

use candle_core::backend::BackendStorage;
use candle_core::{bail, DType, Layout, MetalDevice, MetalStorage, Result, Shape};
use candle_metal_kernels::metal::Buffer;

use super::{dispatch, pipeline, size, upload, HADAMARD};
use crate::hadamard::{Direction, HadamardOp};

#[repr(C)]
#[derive(Clone, Copy)]
struct FwhtParams {
    n: u32,
    block: u32,
    rows: u32,
    chunks: u32,
    scale: f32,
    final_: u32,
    signs_after: u32,
    has_signs: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MixParams {
    rows: u32,
    m: u32,
    m8: u32,
    s: u32,
    scale: f32,
    signs_after: u32,
    has_signs: u32,
}

pub(crate) fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => bail!("unsupported dtype {other:?}, expected f32, bf16 or f16"),
    })
}

/// Largest threadgroup block (elements of f32 in 16 KiB).
const BLOCK: usize = 4096;

/// Transforms `rows` rows of `x` (at byte offset `x_off`, dtype `dtype`) into
/// `y` (dtype `out`, may be `x`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    op: &HadamardOp,
    dev: &MetalDevice,
    x: &Buffer,
    x_off: usize,
    dtype: DType,
    y: &Buffer,
    y_off: usize,
    out: DType,
    rows: usize,
) -> Result<()> {
    let plan = op.plan();
    let (n, m, s) = (plan.n(), plan.m(), plan.s());
    if s > 1 << 15 {
        bail!("hadamard: Metal supports power-of-two factors up to 2^15, got {s}");
    }
    let signs = op.signs_arc().map(|a| upload(dev, a)).transpose()?;
    let transposed = op.direction() == Direction::Transposed;
    let block = s.min(BLOCK);
    let one_pass = m == 1 && s == block;
    let mid_holder = if one_pass {
        None
    } else {
        Some(dev.new_buffer(rows * n, DType::F32, "wb_hadamard_mid")?)
    };
    let (mid, mid_off): (&Buffer, usize) = match &mid_holder {
        Some(b) => (b, 0),
        None => (y, y_off),
    };
    let tin = dtype_name(dtype)?;
    let tout = dtype_name(out)?;
    let chunk_rows = rows * m;
    let params = FwhtParams {
        n: s as u32,
        block: block as u32,
        rows: chunk_rows as u32,
        chunks: m as u32,
        scale: plan.scale(),
        final_: one_pass as u32,
        signs_after: transposed as u32,
        has_signs: signs.is_some() as u32,
    };
    let sbuf: &Buffer = signs.as_deref().unwrap_or(x);
    // Pass 1: butterflies inside blocks (the whole transform when one_pass).
    let name = if one_pass {
        format!("fwht_block_{tin}_{tout}")
    } else {
        format!("fwht_block_{tin}_f32")
    };
    let (dst, dst_off) = if one_pass { (y, y_off) } else { (mid, mid_off) };
    // Forward signs go on at load; transposed ones at the very end (here only
    // when this pass is the end).
    let p1 = FwhtParams {
        signs_after: (one_pass && transposed) as u32,
        has_signs: (signs.is_some() && (one_pass || !transposed)) as u32,
        ..params
    };
    let p = pipeline(dev, HADAMARD, &name)?;
    dispatch(
        dev,
        &p,
        size(chunk_rows * (s / block), 1),
        size(256, 1),
        |e| {
            e.set_input_buffer(0, Some(x), x_off);
            e.set_output_buffer(1, Some(dst), dst_off);
            e.set_input_buffer(2, Some(sbuf), 0);
            e.set_bytes(3, &p1);
            e.set_threadgroup_memory_length(0, block * 4);
        },
    )?;
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
        let name = format!("fwht_cross_{}", if fin { tout } else { "f32" });
        let p = pipeline(dev, HADAMARD, &name)?;
        let threads = chunk_rows * block;
        dispatch(dev, &p, size(threads.div_ceil(256), 1), size(256, 1), |e| {
            e.set_output_buffer(0, Some(mid), mid_off);
            if fin {
                e.set_output_buffer(1, Some(y), y_off);
            } else {
                e.set_output_buffer(1, Some(mid), mid_off);
            }
            e.set_input_buffer(2, Some(sbuf), 0);
            e.set_bytes(3, &p2);
        })?;
        if fin {
            return Ok(());
        }
    }
    // Pass 3: the m×m mix, scale, transposed signs.
    let m8 = m.div_ceil(8) * 8;
    let mat = upload(dev, plan.gpu_mix_matrix(op.direction()))?;
    let mp = MixParams {
        rows: rows as u32,
        m: m as u32,
        m8: m8 as u32,
        s: s as u32,
        scale: plan.scale(),
        signs_after: transposed as u32,
        has_signs: signs.is_some() as u32,
    };
    let p = pipeline(dev, HADAMARD, &format!("mix_{tout}"))?;
    let cols = rows * s;
    dispatch(
        dev,
        &p,
        size(cols.div_ceil(32), m.div_ceil(8)),
        size(32, 8),
        |e| {
            e.set_input_buffer(0, Some(mid), mid_off);
            e.set_output_buffer(1, Some(y), y_off);
            e.set_input_buffer(2, Some(&mat), 0);
            e.set_input_buffer(3, Some(sbuf), 0);
            e.set_bytes(4, &mp);
        },
    )?;
    Ok(())
}

pub(crate) fn forward(
    op: &HadamardOp,
    storage: &MetalStorage,
    layout: &Layout,
) -> Result<(MetalStorage, Shape)> {
    if !layout.is_contiguous() {
        bail!("hadamard: the input must be contiguous");
    }
    let dev = storage.device().clone();
    let dtype = storage.dtype();
    let elems = layout.shape().elem_count();
    let out = dev.new_buffer(elems, dtype, "wb_hadamard")?;
    let rows = elems / op.plan().n();
    if rows > 0 {
        run(
            op,
            &dev,
            storage.buffer(),
            layout.start_offset() * dtype.size_in_bytes(),
            dtype,
            &out,
            0,
            dtype,
            rows,
        )?;
    }
    Ok((
        MetalStorage::new(out, dev, elems, dtype),
        layout.shape().clone(),
    ))
}

pub(crate) fn inplace(op: &HadamardOp, storage: &mut MetalStorage, layout: &Layout) -> Result<()> {
    if !layout.is_contiguous() {
        bail!("hadamard: the tensor must be contiguous");
    }
    let dev = storage.device().clone();
    let dtype = storage.dtype();
    let rows = layout.shape().elem_count() / op.plan().n();
    let off = layout.start_offset() * dtype.size_in_bytes();
    if rows > 0 {
        let buf = storage.buffer();
        run(op, &dev, buf, off, dtype, buf, off, dtype, rows)?;
    }
    Ok(())
}
