//! Rotate-and-quantize, fake quant and dequantize: the rotation into an f32
//! temporary (the Hadamard passes), then one pass of
//! `rotate_quantize.metal`.

use candle_core::{DType, Result};

use super::hadamard::transform;
use super::{dtype_name, params, size, Arg, Buf, Module, Pass, Plan};
use crate::hadamard::HadamardOp;
use crate::quant::{Bits, QuantConfig};

params!(
    /// `QuantParams` of `rotate_quantize.metal`.
    QuantParams {
        groups: u64,
        group: u32,
        clip: f32,
        qmax: f32,
    }
);

params!(
    /// `DequantParams` of `rotate_quantize.metal`.
    DequantParams {
        total: u64,
        group: u32,
    }
);

/// The parameters of `groups` groups of `group` values quantized by `cfg`.
fn quant_params(groups: usize, group: usize, cfg: &QuantConfig) -> QuantParams {
    QuantParams {
        groups: groups as u64,
        group: group as u32,
        clip: cfg.clip_ratio,
        qmax: cfg.bits.qmax(),
    }
}

fn bits_of(b: Bits) -> u32 {
    match b {
        Bits::Int4 => 4,
        Bits::Int8 => 8,
    }
}

/// Groups of 32 threads (a simdgroup) per quantization group, 8 groups a
/// threadgroup of 256.
fn quant_pass(kernel: String, groups: usize, args: Vec<(usize, Arg)>) -> Pass {
    Pass {
        module: Module::RotateQuantize,
        kernel,
        threadgroups: size(groups.div_ceil(8), 1),
        threads: size(256, 1),
        args,
        threadgroup_memory: vec![],
    }
}

/// The plan of `rotate_quantize`: input 0 (`rows` rows of the op's order,
/// `dtype`) into output 0, the codes (u8, `qc.bits.row_bytes(n)` a row),
/// and output 1, the scales (f32, one per `group` elements).
pub fn quantize(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    dtype: DType,
    rows: usize,
) -> Result<Plan> {
    let n = op.plan().n();
    let mut plan = Plan::default();
    let y = plan.temp(rows * n, DType::F32, "wb_rq_rotated");
    let codes = plan.output(rows * qc.bits.row_bytes(n), DType::U8, "wb_rq_codes");
    let scales = plan.output(rows * (n / group), DType::F32, "wb_rq_scales");
    if rows > 0 {
        transform(&mut plan, op, Buf::Input(0), dtype, y, DType::F32, rows)?;
        let groups = rows * n / group;
        let params = quant_params(groups, group, qc);
        plan.passes.push(quant_pass(
            format!("quantize_f32_{}", bits_of(qc.bits)),
            groups,
            vec![
                (0, Arg::Read(y, 0)),
                (1, Arg::Write(codes, 0)),
                (2, Arg::Write(scales, 0)),
                (3, Arg::Bytes(params.bytes())),
            ],
        ));
    }
    Ok(plan)
}

/// The plan of `rotate_fake_quant`: input 0 (`rows` rows, `dtype`) into
/// output 0, Q(Hx) in `dtype`.
pub fn fake_quant(op: &HadamardOp, cfg: &QuantConfig, dtype: DType, rows: usize) -> Result<Plan> {
    let n = op.plan().n();
    let group = cfg.group_len(n)?;
    let elems = rows * n;
    let mut plan = Plan::default();
    let y = plan.temp(elems, DType::F32, "wb_rfq_rotated");
    let out = plan.output(elems, dtype, "wb_rfq");
    if rows > 0 {
        transform(&mut plan, op, Buf::Input(0), dtype, y, DType::F32, rows)?;
        let groups = elems / group;
        let params = quant_params(groups, group, cfg);
        plan.passes.push(quant_pass(
            format!("fake_f32_{}", dtype_name(dtype)?),
            groups,
            vec![
                (0, Arg::Read(y, 0)),
                (1, Arg::Write(out, 0)),
                (2, Arg::Bytes(params.bytes())),
            ],
        ));
    }
    Ok(plan)
}

/// The plan of `dequantize`: input 0 (codes, u8) and input 1 (scales, f32)
/// of `rows` rows of `n` values into output 0 (f32).
pub fn dequantize(bits: Bits, n: usize, group: usize, rows: usize) -> Plan {
    let total = rows * n;
    let mut plan = Plan::default();
    let out = plan.output(total, DType::F32, "wb_dequantize");
    if total > 0 {
        let params = DequantParams {
            total: total as u64,
            group: group as u32,
        };
        plan.passes.push(Pass {
            module: Module::RotateQuantize,
            kernel: format!("dequantize_{}", bits_of(bits)),
            threadgroups: size(total.div_ceil(256), 1),
            threads: size(256, 1),
            args: vec![
                (0, Arg::Read(Buf::Input(0), 0)),
                (1, Arg::Read(Buf::Input(1), 0)),
                (2, Arg::Write(out, 0)),
                (3, Arg::Bytes(params.bytes())),
            ],
            threadgroup_memory: vec![],
        });
    }
    plan
}
