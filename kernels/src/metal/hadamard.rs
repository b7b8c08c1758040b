//! The Hadamard transform on Metal: the passes of
//! `crate::metal_plan::hadamard` (kernels in `hadamard.metal`).

use candle_core::backend::BackendStorage;
use candle_core::{bail, Layout, MetalStorage, Result, Shape};

use super::execute;
use crate::hadamard::HadamardOp;
use crate::metal_plan;

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
    let rows = elems / op.plan().n();
    let plan = metal_plan::hadamard::forward(op, dtype, rows)?;
    let x = (
        storage.buffer(),
        layout.start_offset() * dtype.size_in_bytes(),
    );
    let [out] = execute(&dev, &plan, &[x])?;
    Ok((
        MetalStorage::new(out, dev, elems, dtype),
        layout.shape().clone(),
    ))
}

pub(crate) fn inplace(op: &HadamardOp, storage: &mut MetalStorage, layout: &Layout) -> Result<()> {
    if !layout.is_contiguous() {
        bail!("hadamard: the tensor must be contiguous");
    }
    let dtype = storage.dtype();
    let rows = layout.shape().elem_count() / op.plan().n();
    let plan = metal_plan::hadamard::inplace(op, dtype, rows)?;
    let x = (
        storage.buffer(),
        layout.start_offset() * dtype.size_in_bytes(),
    );
    let [] = execute(storage.device(), &plan, &[x])?;
    Ok(())
}
