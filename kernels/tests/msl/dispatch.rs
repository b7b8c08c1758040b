//! The dispatch code of `src/metal/*.rs`, transcribed for the host emulator
//! (`emu.rs`). That code is compiled only with the `metal` feature on
//! macOS and calls Metal, so it cannot run here; these functions repeat its
//! arithmetic statement by statement (grids, threadgroup sizes, threadgroup
//! memory lengths, parameters, buffer slots and offsets, the order of the
//! passes), on `emu::Dev` instead of a `MetalDevice`. Where they differ, a
//! comment says why; a change to a `.rs` dispatch must be repeated here.
//! Common to all: inputs come as buffers at offset 0 (the `.rs` code binds
//! the tensor's storage at its layout's offset), the ops' shape and dtype
//! checks that precede a dispatch are left to the callers, and the sampler
//! takes an optional chunk length (the `.rs` code always uses 8192).

use std::sync::Arc;

use candle_core::{bail, DType, Result};
use wb_kernels::gemm::{tile_map, GemmConfig, METAL_TILE};
use wb_kernels::hadamard::{Direction, HadamardOp, HadamardPlan};
use wb_kernels::quant::{Bits, Dequantize, QuantConfig};
use wb_kernels::sample::GumbelSampler;
use wb_kernels::stats::ChannelStats;

use super::emu::{dispatch, params, pipeline, size, Buffer, Dev};

const HADAMARD: &str = "hadamard";
const ROTATE_QUANTIZE: &str = "rotate_quantize";
const CHANNEL_STATS: &str = "channel_stats";
const GEMM_W8A8: &str = "gemm_w8a8";
const GUMBEL_SAMPLE: &str = "gumbel_sample";

/// mod.rs's `upload` (its cache aside).
fn upload(dev: &mut Dev, host: &[f32]) -> Result<Arc<Buffer>> {
    Ok(Arc::new(dev.new_buffer_with_data(host)?))
}

// ---- hadamard.rs ----

params!(FwhtParams {
    n: u32,
    block: u32,
    rows: u32,
    chunks: u32,
    scale: f32,
    final_: u32,
    signs_after: u32,
    has_signs: u32,
});

params!(MixParams {
    rows: u32,
    m: u32,
    m8: u32,
    s: u32,
    scale: f32,
    signs_after: u32,
    has_signs: u32,
});

pub fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => bail!("unsupported dtype {other:?}, expected f32, bf16 or f16"),
    })
}

/// `HadamardPlan::gpu_mix_matrix` (crate-private): M[b][a], the coefficient
/// of input chunk b in output a, rows padded to a multiple of 8.
fn gpu_mix_matrix(plan: &HadamardPlan, dir: Direction) -> Vec<f32> {
    let (m, base) = (plan.m(), plan.base(dir));
    let m8 = m.div_ceil(8) * 8;
    let mut out = vec![0.0f32; m * m8];
    for b in 0..m {
        for a in 0..m {
            out[b * m8 + a] = base[a * m + b];
        }
    }
    out
}

/// Largest threadgroup block (elements of f32 in 16 KiB).
const BLOCK: usize = 4096;

/// hadamard.rs's `run`: transforms `rows` rows of `x` into `y` (may be `x`).
#[allow(clippy::too_many_arguments)]
pub fn hadamard_run(
    op: &HadamardOp,
    dev: &mut Dev,
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
    // `signs_arc` is crate-private; the signs are the same values.
    let signs = op.signs().map(|a| upload(dev, a)).transpose()?;
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
    let mat = upload(dev, &gpu_mix_matrix(plan, op.direction()))?;
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

// ---- rotate_quantize.rs ----

params!(QuantParams {
    groups: u64,
    group: u32,
    clip: f32,
    qmax: f32,
});

params!(DequantParams {
    total: u64,
    group: u32,
});

fn bits_of(b: Bits) -> u32 {
    match b {
        Bits::Int4 => 4,
        Bits::Int8 => 8,
    }
}

/// rotate_quantize.rs's `quantize`: (codes, scales) of the rows of `x`.
#[allow(clippy::too_many_arguments)]
pub fn quantize(
    op: &HadamardOp,
    qc: &QuantConfig,
    group: usize,
    dev: &mut Dev,
    x: &Buffer,
    x_off: usize,
    dtype: DType,
    rows: usize,
) -> Result<(Buffer, Buffer)> {
    let n = op.plan().n();
    let y = dev.new_buffer(rows * n, DType::F32, "wb_rq_rotated")?;
    let codes = dev.new_buffer(rows * qc.bits.row_bytes(n), DType::U8, "wb_rq_codes")?;
    let scales = dev.new_buffer(rows * (n / group), DType::F32, "wb_rq_scales")?;
    if rows > 0 {
        hadamard_run(op, dev, x, x_off, dtype, &y, 0, DType::F32, rows)?;
        let groups = rows * n / group;
        let params = QuantParams {
            groups: groups as u64,
            group: group as u32,
            clip: qc.clip_ratio,
            qmax: qc.bits.qmax(),
        };
        let p = pipeline(
            dev,
            ROTATE_QUANTIZE,
            &format!("quantize_f32_{}", bits_of(qc.bits)),
        )?;
        dispatch(dev, &p, size(groups.div_ceil(8), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(&y), 0);
            e.set_output_buffer(1, Some(&codes), 0);
            e.set_output_buffer(2, Some(&scales), 0);
            e.set_bytes(3, &params);
        })?;
    }
    Ok((codes, scales))
}

/// rotate_quantize.rs's `fake_quant`: Q(Hx) in `dtype`, `rows` rows of `x`.
pub fn fake_quant(
    op: &HadamardOp,
    cfg: &QuantConfig,
    dev: &mut Dev,
    x: &Buffer,
    dtype: DType,
    rows: usize,
) -> Result<Buffer> {
    let n = op.plan().n();
    let group = cfg.group_len(n)?;
    let elems = rows * n;
    let y = dev.new_buffer(elems, DType::F32, "wb_rfq_rotated")?;
    let out = dev.new_buffer(elems, dtype, "wb_rfq")?;
    if rows > 0 {
        hadamard_run(op, dev, x, 0, dtype, &y, 0, DType::F32, rows)?;
        let groups = elems / group;
        let params = QuantParams {
            groups: groups as u64,
            group: group as u32,
            clip: cfg.clip_ratio,
            qmax: cfg.bits.qmax(),
        };
        let p = pipeline(
            dev,
            ROTATE_QUANTIZE,
            &format!("fake_f32_{}", dtype_name(dtype)?),
        )?;
        dispatch(dev, &p, size(groups.div_ceil(8), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(&y), 0);
            e.set_output_buffer(1, Some(&out), 0);
            e.set_bytes(2, &params);
        })?;
    }
    Ok(out)
}

/// rotate_quantize.rs's `dequantize` of `rows` rows of `d.n` codes.
pub fn dequantize(
    d: &Dequantize,
    rows: usize,
    group: usize,
    dev: &mut Dev,
    codes: &Buffer,
    scales: &Buffer,
) -> Result<Buffer> {
    let total = rows * d.n;
    let out = dev.new_buffer(total, DType::F32, "wb_dequantize")?;
    if total > 0 {
        let params = DequantParams {
            total: total as u64,
            group: group as u32,
        };
        let p = pipeline(
            dev,
            ROTATE_QUANTIZE,
            &format!("dequantize_{}", bits_of(d.cfg.bits)),
        )?;
        dispatch(dev, &p, size(total.div_ceil(256), 1), size(256, 1), |e| {
            e.set_input_buffer(0, Some(codes), 0);
            e.set_input_buffer(1, Some(scales), 0);
            e.set_output_buffer(2, Some(&out), 0);
            e.set_bytes(3, &params);
        })?;
    }
    Ok(out)
}

// ---- channel_stats.rs ----

params!(StatsParams {
    rows: u64,
    channels: u32,
    block_rows: u32,
});

/// channel_stats.rs's `partials` of `[rows, channels]` in `dtype`.
pub fn channel_stats(
    op: &ChannelStats,
    dev: &mut Dev,
    x: &Buffer,
    dtype: DType,
    rows: usize,
    channels: usize,
) -> Result<Buffer> {
    let blocks = rows.div_ceil(op.block_rows);
    let count = blocks * channels * wb_kernels::stats::FIELDS;
    let out = dev.new_buffer(count, DType::F32, "wb_channel_stats")?;
    let params = StatsParams {
        rows: rows as u64,
        channels: channels as u32,
        block_rows: op.block_rows as u32,
    };
    let p = pipeline(
        dev,
        CHANNEL_STATS,
        &format!("channel_stats_{}", dtype_name(dtype)?),
    )?;
    dispatch(
        dev,
        &p,
        size(channels.div_ceil(256), blocks),
        size(256, 1),
        |e| {
            e.set_input_buffer(0, Some(x), 0);
            e.set_output_buffer(1, Some(&out), 0);
            e.set_bytes(2, &params);
        },
    )?;
    Ok(out)
}

// ---- gemm.rs ----

params!(GemmParams {
    m: u32,
    n: u32,
    k: u32,
    scaled: u32,
});

/// gemm.rs's `gemm`: A `[m, k]` · B `[n, k]`ᵀ, i32, or f32 with `scales`
/// (M row scales then N column scales).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    c: &GemmConfig,
    dev: &mut Dev,
    a: &Buffer,
    b: &Buffer,
    (m, n, k): (usize, usize, usize),
    scales: Option<&Buffer>,
) -> Result<Buffer> {
    c.check()?;
    if (c.tile_m, c.tile_n) != METAL_TILE || c.tile_k != 32 {
        bail!("gemm_w8a8 (Metal): the kernel's tile is 64x64x32, got {c:?}");
    }
    let (tm, tn) = c.grid(m, n);
    let map = dev.new_buffer_with_data(&tile_map(c.schedule, tm, tn)?)?;
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
    let p = pipeline(dev, GEMM_W8A8, "gemm_w8a8")?;
    dispatch(dev, &p, size(tm * tn, 1), size(256, 1), |e| {
        e.set_input_buffer(0, Some(a), 0);
        e.set_input_buffer(1, Some(b), 0);
        e.set_input_buffer(2, Some(&map), 0);
        match scales {
            Some(s) => e.set_input_buffer(3, Some(s), 0),
            None => e.set_input_buffer(3, Some(&map), 0),
        }
        e.set_output_buffer(4, Some(&out), 0);
        e.set_bytes(5, &params);
    })?;
    Ok(out)
}

// ---- gumbel_sample.rs ----

/// Tokens per threadgroup.
const CHUNK: usize = 8192;

params!(GumbelParams {
    vocab: u32,
    chunk: u32,
    chunks: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    has_thr: u32,
    inv_t: f32,
});

/// gumbel_sample.rs's `sample`: (tokens, scores) of `[batch, vocab]`
/// logits in `dtype`. `chunk` is gumbel_sample.rs's CHUNK, or another
/// length for chunk edges in small vocabularies.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    g: &GumbelSampler,
    dev: &mut Dev,
    x: &Buffer,
    dtype: DType,
    batch: usize,
    vocab: usize,
    positions: &[u64],
    chunk: Option<usize>,
) -> Result<(Buffer, Buffer)> {
    let chunk = chunk.unwrap_or(CHUNK);
    let t = dtype_name(dtype)?;
    let pos = dev.new_buffer_with_data(positions)?;
    let chunks = vocab.div_ceil(chunk);
    let thresholds = dev.new_buffer(batch, DType::F32, "wb_topk")?;
    if let Some(k) = g.top_k {
        let p = pipeline(dev, GUMBEL_SAMPLE, &format!("topk_threshold_{t}"))?;
        let (v, k) = (vocab as u32, k.min(u32::MAX as usize) as u32);
        dispatch(dev, &p, size(batch, 1), size(1024, 1), |e| {
            e.set_input_buffer(0, Some(x), 0);
            e.set_output_buffer(1, Some(&thresholds), 0);
            e.set_bytes(2, &v);
            e.set_bytes(3, &k);
        })?;
    }
    let params = GumbelParams {
        vocab: vocab as u32,
        chunk: chunk as u32,
        chunks: chunks as u32,
        seed_lo: g.seed as u32,
        seed_hi: (g.seed >> 32) as u32,
        stream: g.stream,
        has_thr: g.top_k.is_some() as u32,
        inv_t: g.inv_temperature(),
    };
    let pscore = dev.new_buffer(batch * chunks, DType::F32, "wb_gumbel_pscore")?;
    let ptoken = dev.new_buffer(batch * chunks, DType::U32, "wb_gumbel_ptoken")?;
    let tab = upload(dev, &wb_kernels::sample::bound::bucket_table())?;
    let p = pipeline(dev, GUMBEL_SAMPLE, &format!("gumbel_partial_{t}"))?;
    dispatch(dev, &p, size(chunks, batch), size(256, 1), |e| {
        e.set_input_buffer(0, Some(x), 0);
        e.set_input_buffer(1, Some(&pos), 0);
        e.set_input_buffer(2, Some(&thresholds), 0);
        e.set_output_buffer(3, Some(&pscore), 0);
        e.set_output_buffer(4, Some(&ptoken), 0);
        e.set_bytes(5, &params);
        e.set_input_buffer(6, Some(&*tab), 0);
    })?;
    let tokens = dev.new_buffer(batch, DType::U32, "wb_gumbel_tokens")?;
    let scores = dev.new_buffer(batch, DType::F32, "wb_gumbel_scores")?;
    let rows = batch as u32;
    let p = pipeline(dev, GUMBEL_SAMPLE, "gumbel_finish")?;
    dispatch(dev, &p, size(batch.div_ceil(64), 1), size(64, 1), |e| {
        e.set_input_buffer(0, Some(&pscore), 0);
        e.set_input_buffer(1, Some(&ptoken), 0);
        e.set_output_buffer(2, Some(&tokens), 0);
        e.set_output_buffer(3, Some(&scores), 0);
        e.set_bytes(4, &params);
        e.set_bytes(5, &rows);
    })?;
    Ok((tokens, scores))
}

/// The lines of `src/metal/*.rs` that decide a dispatch (grid and
/// threadgroup sizes, `set_bytes`, threadgroup memory lengths, kernel names,
/// parameter values and struct fields) that their transcription here lacks,
/// normalised (no spaces; `&dev` is `dev`, `crate::` is `wb_kernels::`, the
/// storage's dtype is `dtype`, the fixed chunk is `chunk`): empty while the
/// transcription is current.
pub fn untranscribed_lines() -> Vec<String> {
    let norm = |l: &str| -> String {
        l.replace("&dev", "dev")
            .replace("crate::", "wb_kernels::")
            .replace("s.dtype()", "dtype")
            .replace("CHUNK as", "chunk as")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    // The lines of function `name` of `src`, up to its closing brace.
    let body = |src: &str, name: &str| -> Vec<String> {
        let start = format!("fn {name}(");
        let lines = src.lines().skip_while(|l| !l.contains(&start));
        lines.take_while(|l| *l != "}").map(norm).collect()
    };
    let markers = [
        "size(",
        "set_bytes(",
        "set_threadgroup_memory_length(",
        "format!(\"",
        "as u32",
        "as u64",
    ];
    let here = include_str!("dispatch.rs");
    let mut missing = Vec::new();
    for (module, theirs, ours) in [
        ("hadamard", "run", "hadamard_run"),
        ("rotate_quantize", "quantize", "quantize"),
        ("rotate_quantize", "fake_quant", "fake_quant"),
        ("rotate_quantize", "dequantize", "dequantize"),
        ("channel_stats", "partials", "channel_stats"),
        ("gemm", "gemm", "gemm"),
        ("gumbel_sample", "sample", "sample"),
    ] {
        let path = super::host::crate_dir().join(format!("src/metal/{module}.rs"));
        let src = std::fs::read_to_string(&path).unwrap();
        let (our_body, their_body) = (body(here, ours), body(&src, theirs));
        assert!(
            !their_body.is_empty(),
            "no fn {theirs} in {}",
            path.display()
        );
        for line in their_body {
            let decides = markers.iter().any(|m| line.contains(&m.replace(' ', "")));
            if decides && !our_body.contains(&line) {
                missing.push(format!("src/metal/{module}.rs: {line}"));
            }
        }
        // The parameter structs' fields, in the file.
        let mut in_struct = false;
        for line in src.lines() {
            in_struct = (in_struct || line.starts_with("struct ")) && line != "}";
            if in_struct
                && !line.starts_with("struct ")
                && !here.lines().any(|l| norm(l) == norm(line))
            {
                missing.push(format!("src/metal/{module}.rs: {}", line.trim()));
            }
        }
    }
    missing
}
