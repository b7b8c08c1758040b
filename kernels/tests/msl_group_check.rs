//! The Metal kernels run on the host with threadgroup semantics and are
//! compared with the CPU reference. No Apple machine exists here; the MSL of
//! `src/metal/` is compiled as C++ (see `tests/msl_check.rs` for how) into an
//! executor (`tests/msl/group_harness.cpp`) whose emulator
//! (`tests/msl/group_emulator.h`) runs the threads of each threadgroup as
//! cooperative fibers, deterministically: threadgroup variables and memory
//! shared by the group and poisoned (NaN) at its start, `threadgroup_barrier`
//! over the group, the simd functions over simdgroups of 32, threads ready in
//! index order or reversed (a race between barriers reads poison under one
//! of the two). A thread that returns or waits elsewhere while others wait
//! at a barrier or simd function is reported, not hung on (for simd calls
//! this is stricter than Metal, which reduces over the active lanes; these
//! kernels make every simd call from uniform control flow). So are Metal's
//! limits: 1024 threads and 32 KiB of threadgroup memory a group,
//! threadgroup memory lengths in multiples of 16 bytes, equal shuffle deltas.
//!
//! Each op is dispatched by the plans of `wb_kernels::metal_plan`, the
//! same plans `src/metal/*.rs` execute on a Mac (grids, threadgroup sizes,
//! threadgroup memory lengths, parameter bytes, buffer slots and offsets,
//! the sequence of passes), run by `tests/msl/emu.rs`'s `execute` in the
//! way `src/metal/mod.rs`'s `execute` encodes them. The kernels' arguments
//! are bound from their own `[[buffer(i)]]` and thread attributes
//! (`tests/msl/emu.rs` generates the launchers), so a slot that a plan and
//! a kernel disagree on fails too; a pass must name a kernel of its module.
//! Outputs and temporaries start poisoned, every buffer and the threadgroup
//! memory end in a canary that a dispatch must leave intact, and a buffer a
//! plan binds for reading only must come out of each dispatch unchanged.
//!
//! Compared with the CPU, with the tolerances of `tests/gpu_parity.rs` and
//! `tests/gemm_parity.rs`: the Hadamard transform (f32, bf16, f16 in and
//! out; orders 2^k, k = 0..15, and 12, 20, 28 · 2^k up to 12 · 2^15; signs
//! or none, both directions, in place and out of place, inputs at an offset
//! in their buffer), rotate-quantize (codes, scales, dequantization of the
//! emulated codes, fake quant; int8 and int4, per token and per group; f32
//! and bf16 in), the W8A8 GEMM (every schedule, int32 and scaled, bit for
//! bit), the sampler (tokens and score bits; top-k included, at the count
//! of non-NaN logits too; near ties that the bucket filter must keep; f32,
//! bf16, f16), channel statistics and dequantization (bit for bit). The
//! 16-bit floats of the stand-in round as Metal and the `half` crate do
//! (checked bit for bit in `tests/msl_check.rs`).
//!
//! What this cannot check, because it never runs on Metal: the Metal
//! executor loop itself (`src/metal/mod.rs`'s `execute`, `pipeline`,
//! `upload`: compiled for `aarch64-apple-darwin` in CI, never run), Metal's
//! compiler and its rules, memory ordering (every access is sequentially
//! consistent here, so a barrier with the wrong `mem_flags`, or
//! device-memory visibility between threads, is not caught), simdgroups
//! that run ahead of others between barriers, the GPU's float arithmetic
//! where it differs from the host's IEEE binary32 (should the GPU flush
//! subnormals), and the per-pipeline thread limit. `cargo test -p
//! wb-kernels --features metal --test gpu_parity` on a Mac checks those.
//! Without a C++ compiler the tests fail unless `WB_SKIP_MSL_CHECK=1` is
//! set.

#[path = "msl/data.rs"]
mod data;
#[path = "msl/emu.rs"]
mod emu;
#[path = "msl/host.rs"]
mod host;
#[path = "msl/sampler_checks.rs"]
mod sampler_checks;

use candle_core::{DType, Device, Tensor};
use wb_kernels::gemm::{as_i8, reference_i32, scale_output, GemmConfig, Schedule, METAL_TILE};
use wb_kernels::hadamard::{hadamard, Direction, HadamardOp};
use wb_kernels::quant::{dequantize, rotate_fake_quant, rotate_quantize, Bits, QuantConfig};
use wb_kernels::stats::ChannelStats;

use wb_kernels::metal_plan::{self, size};

use data::{floats, host, plan, signs, uniform, upload, upload_after, words};
use emu::{execute, executor, Bind, Buffer, Dev};
use host::xorshift;
use wb_kernels::test_support::rel_err;

#[test]
fn emulator_exchanges_simd_values_and_reports_misbehaviour() {
    let Some(_) = executor() else { return };
    // simd_shuffle_down and simd_max over two simdgroups and a partial one.
    for (threads, delta) in [(64usize, 5u32), (80, 1), (32, 16)] {
        let mut dev = Dev::default();
        let out = dev.new_buffer(2 * threads, DType::U32);
        let args = [
            (0, Bind::Write(out, 0)),
            (1, Bind::Bytes(delta.to_le_bytes().to_vec())),
        ];
        emu::dispatch(
            &mut dev,
            "selftest_simd",
            size(1, 1),
            size(threads, 1),
            &args,
            &[],
        );
        let got = words(&dev.run(&[out]).unwrap()[0]);
        for t in 0..threads {
            let (base, lane) = (t / 32 * 32, t % 32);
            let width = (threads - base).min(32);
            let src = if lane + (delta as usize) < width {
                t + delta as usize
            } else {
                t
            };
            let max = (base..base + width).map(|u| (7 * u) % 61).max().unwrap();
            assert_eq!(
                (got[2 * t], got[2 * t + 1]),
                (3 * src as u32, max as u32),
                "{threads} threads, delta {delta}: thread {t}"
            );
        }
    }
    let run = |kernel: &str, racy: u32, reverse: bool| {
        let mut dev = Dev::default();
        dev.reverse_order(reverse);
        let x: Vec<u32> = (0..256).map(|i| 1000 + i).collect();
        let x = dev.new_buffer_with_data(&x);
        let out = dev.new_buffer(256, DType::U32);
        let args = if kernel == "selftest_neighbour" {
            vec![
                (0, Bind::Read(x, 0)),
                (1, Bind::Write(out, 0)),
                (2, Bind::Bytes(racy.to_le_bytes().to_vec())),
            ]
        } else {
            vec![(0, Bind::Write(out, 0))]
        };
        emu::dispatch(&mut dev, kernel, size(2, 1), size(256, 1), &args, &[]);
        dev.run(&[out]).map(|o| words(&o[0]))
    };
    let err = run("selftest_barrier_divergence", 0, false).unwrap_err();
    assert!(
        err.contains("barrier divergence") && err.contains("returned"),
        "{err}"
    );
    let err = run("selftest_simd_divergence", 0, false).unwrap_err();
    assert!(err.contains("simdgroup divergence"), "{err}");
    // The missing barrier: unseen in index order (each left neighbour has
    // written already), poison read in reverse order.
    let want: Vec<u32> = (0..256).map(|i: u32| 1000 + i.saturating_sub(1)).collect();
    for reverse in [false, true] {
        assert_eq!(run("selftest_neighbour", 0, reverse).unwrap(), want);
    }
    assert_eq!(run("selftest_neighbour", 1, false).unwrap(), want);
    assert_ne!(run("selftest_neighbour", 1, true).unwrap(), want);
}

/// (m, k) of the orders m·2^k the Hadamard test runs: every s = 2^k from 1
/// (one pass; the block and cross passes from 2^13) and the mix for 12, 20
/// and 28, across the 4096 block too. s = 1 and 2 (n = 1, 2, 12, 20, 24,
/// 40) are the blocks whose threadgroup memory the plan rounds up to 16
/// bytes.
fn hadamard_orders() -> Vec<(usize, u32)> {
    let mut o: Vec<(usize, u32)> = (0..=15).map(|k| (1, k)).collect();
    o.extend([
        (12, 0),
        (20, 0),
        (12, 1),
        (20, 1),
        (12, 2),
        (20, 3),
        (28, 2),
        (12, 7),
        (20, 12),
        (28, 13),
        (12, 15),
    ]);
    o
}

#[test]
fn metal_hadamard_on_the_host_matches_cpu() {
    let Some(_) = executor() else { return };
    let mut next = uniform(0x4ada_3a4d);
    // The largest error per dtype, for powers of two (the CPU's operations
    // in the CPU's order: f32 should agree exactly) and with a mix.
    let mut worst = std::collections::BTreeMap::<String, f64>::new();
    for (m, k) in hadamard_orders() {
        let p = plan(m, k);
        let n = p.n();
        let rows = ((1 << 15) / n).clamp(1, 5);
        let x: Vec<f32> = (0..rows * n).map(|_| next()).collect();
        let signs = signs(n, n as u64);
        let mut dev = Dev::default();
        let mut jobs = Vec::new();
        for (i, dir) in [Direction::Forward, Direction::Transposed]
            .into_iter()
            .enumerate()
        {
            let plain = HadamardOp::new(p.clone(), dir);
            let signed = plain.clone().with_signs(&signs).unwrap();
            for (op, with_signs) in [(plain, false), (signed, true)] {
                for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 1e-2), (DType::F16, 2e-3)] {
                    let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap();
                    let want = host(&hadamard(&xc, &op).unwrap());
                    // The transposed inputs start a row into their buffer.
                    let x = upload_after(&mut dev, &xc, i * n);
                    // In place for one dtype a case, out of place otherwise;
                    // threads in reverse order for some.
                    let in_place = (i + usize::from(with_signs) + dtype.size_in_bytes()) % 3 == 0;
                    dev.reverse_order(with_signs && dtype == DType::F32);
                    let y = if in_place {
                        let plan = metal_plan::hadamard::inplace(&op, dtype, rows).unwrap();
                        execute(&mut dev, &plan, &[x]);
                        x
                    } else {
                        let plan = metal_plan::hadamard::forward(&op, dtype, rows).unwrap();
                        (execute(&mut dev, &plan, &[x])[0], 0)
                    };
                    let what = format!(
                        "n={n} (m={m}) rows={rows} {dir:?} signs {with_signs} {dtype:?} \
                         in place {in_place} at byte {}",
                        x.1
                    );
                    jobs.push((y, dtype, tol, want, what));
                }
            }
        }
        let outs: Vec<Buffer> = jobs.iter().map(|j| j.0 .0).collect();
        let got = dev
            .run(&outs)
            .unwrap_or_else(|e| panic!("n={n} (m={m}): {e}"));
        for (((_, start), dtype, tol, want, what), bytes) in jobs.into_iter().zip(got) {
            let (before, y) = bytes.split_at(start);
            assert!(
                floats(before, dtype).iter().all(|&v| v == 7.0),
                "{what}: the row before the input changed"
            );
            let e = rel_err(&floats(y, dtype), &want);
            assert!(e < tol, "{what}: rel err {e}");
            let w = worst
                .entry(format!("{dtype:?} m {}", if m == 1 { "1" } else { "> 1" }))
                .or_default();
            *w = w.max(e);
        }
    }
    eprintln!("msl_group_check: Hadamard, largest rel err: {worst:?}");
}

/// Codes (as gpu_parity.rs: each within one of the CPU's, at most 1 in 200
/// different), scales (rel err 1e-5), dequantization of the emulated codes
/// (bit for bit with the CPU's of the same codes) and fake quant (rel err
/// 0.05), for int8 and int4, per token and per group.
#[test]
fn metal_rotate_quantize_on_the_host_matches_cpu() {
    let Some(_) = executor() else { return };
    use metal_plan::rotate_quantize as rq;
    let mut next = uniform(0x40_7a7e);
    for (m, k) in [
        (1, 2),
        (1, 4),
        (1, 7),
        (1, 10),
        (1, 13),
        (12, 3),
        (20, 2),
        (28, 5),
    ] {
        let p = plan(m, k);
        let n = p.n();
        let rows = ((1 << 14) / n).clamp(1, 7) | 1;
        let x: Vec<f32> = (0..rows * n).map(|_| next()).collect();
        let signs = signs(n, 7 * n as u64);
        let mut dev = Dev::default();
        let mut jobs = Vec::new();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            let transposed = dir == Direction::Transposed;
            for bits in [Bits::Int8, Bits::Int4] {
                let half = (n >= 64).then_some(n / 2);
                for group in [None, Some(2), Some(4), Some(32), Some(128), Some(512), half] {
                    if group.is_some_and(|g| !n.is_multiple_of(g) || g >= n) {
                        continue;
                    }
                    let cfg = QuantConfig {
                        bits,
                        group,
                        clip_ratio: 0.9,
                    };
                    let g = cfg.group_len(n).unwrap();
                    for dtype in [DType::F32, DType::BF16] {
                        let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap();
                        let (cc, sc) = rotate_quantize(&xc, &op, &cfg).unwrap();
                        let fc = host(&rotate_fake_quant(&xc, &op, &cfg).unwrap());
                        // The transposed inputs start a row into their buffer.
                        let x = upload_after(&mut dev, &xc, usize::from(transposed) * n);
                        let quantize = rq::quantize(&op, &cfg, g, dtype, rows).unwrap();
                        let [codes, scales] = execute(&mut dev, &quantize, &[x])[..] else {
                            panic!("quantize: two outputs")
                        };
                        let dequantize = rq::dequantize(cfg.bits, n, g, rows);
                        let deq = execute(&mut dev, &dequantize, &[(codes, 0), (scales, 0)])[0];
                        let fake_quant = rq::fake_quant(&op, &cfg, dtype, rows).unwrap();
                        let fake = execute(&mut dev, &fake_quant, &[x])[0];
                        let what = format!("n={n} (m={m}) {dir:?} {bits:?} {group:?} {dtype:?}");
                        jobs.push((cfg, cc, sc, fc, dtype, [codes, scales, deq, fake], what));
                    }
                }
            }
        }
        let outs: Vec<Buffer> = jobs.iter().flat_map(|j| j.5).collect();
        let got = dev.run(&outs).unwrap_or_else(|e| panic!("n={n}: {e}"));
        for ((cfg, cc, sc, fc, dtype, _, what), got) in jobs.into_iter().zip(got.chunks(4)) {
            let unpack = |c: &[u8]| -> Vec<i32> {
                match cfg.bits {
                    Bits::Int8 => c.iter().map(|&b| b as i8 as i32).collect(),
                    Bits::Int4 => c
                        .iter()
                        .flat_map(|&b| [((b << 4) as i8 >> 4) as i32, (b as i8 >> 4) as i32])
                        .collect(),
                }
            };
            let cpu_codes = cc.flatten_all().unwrap().to_vec1::<u8>().unwrap();
            let (a, b) = (unpack(&cpu_codes), unpack(&got[0]));
            assert_eq!(a.len(), b.len(), "{what}: codes");
            let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1),
                "{what}: codes differ by more than 1"
            );
            assert!(
                differ * 200 <= a.len().max(200),
                "{what}: {differ} of {} codes differ",
                a.len()
            );
            let scales = floats(&got[1], DType::F32);
            let e = rel_err(&scales, &host(&sc));
            assert!(e < 1e-5, "{what}: scales rel err {e}");
            let codes_t =
                Tensor::from_vec(got[0].clone(), (rows, got[0].len() / rows), &Device::Cpu)
                    .unwrap();
            let scales_t = Tensor::from_vec(scales, sc.dims(), &Device::Cpu).unwrap();
            let want = host(&dequantize(&codes_t, &scales_t, &cfg, n).unwrap());
            let deq = floats(&got[2], DType::F32);
            assert!(
                deq.len() == want.len()
                    && deq
                        .iter()
                        .zip(&want)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{what}: dequantize"
            );
            let e = rel_err(&floats(&got[3], dtype), &fc);
            assert!(e < 0.05, "{what}: fake quant rel err {e}");
        }
    }
}

/// As gemm_parity.rs: int32 results identical and scaled f32 results
/// bit-identical to the CPU's, every schedule, M and N off the 64 tile, K a
/// multiple of 16 but not always of the 32 step.
#[test]
fn metal_gemm_on_the_host_matches_cpu() {
    let Some(_) = executor() else { return };
    let mut next = xorshift(0x8a8_0001);
    let mut codes = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| match next() % 8 {
                0 => 0x80,
                1 => 0x7f,
                _ => next() as u8,
            })
            .collect()
    };
    for (m, n, k) in [
        (1, 1, 16),
        (16, 64, 64),
        (17, 129, 80),
        (130, 70, 272),
        (65, 200, 48),
    ] {
        let (a, b) = (codes(m * k), codes(n * k));
        let want = reference_i32(as_i8(&a), as_i8(&b), m, n, k);
        let rs: Vec<f32> = (0..m).map(|i| 0.01 + i as f32 * 1e-3).collect();
        let cs: Vec<f32> = (0..n).map(|j| 0.02 + (j % 7) as f32 * 3e-3).collect();
        let want_f: Vec<u32> = scale_output(&want, &rs, &cs, n)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let mut dev = Dev::default();
        let ab = (dev.new_buffer_with_data(&a), 0);
        let bb = (dev.new_buffer_with_data(&b), 0);
        let scales = (dev.new_buffer_with_data(&[rs, cs].concat()), 0);
        let mut outs = Vec::new();
        for s in Schedule::ALL {
            let cfg = GemmConfig::new(METAL_TILE.0, METAL_TILE.1, 32, s);
            dev.reverse_order(outs.len() % 4 == 2);
            let plain = metal_plan::gemm::gemm(&cfg, (m, n, k), false).unwrap();
            outs.push(execute(&mut dev, &plain, &[ab, bb])[0]);
            let scaled = metal_plan::gemm::gemm(&cfg, (m, n, k), true).unwrap();
            outs.push(execute(&mut dev, &scaled, &[ab, bb, scales])[0]);
        }
        let got = dev
            .run(&outs)
            .unwrap_or_else(|e| panic!("M={m} N={n} K={k}: {e}"));
        for (i, bytes) in got.iter().enumerate() {
            let what = format!("M={m} N={n} K={k} {:?}", Schedule::ALL[i / 2]);
            let got = words(bytes);
            if i % 2 == 0 {
                let got: Vec<i32> = got.iter().map(|&v| v as i32).collect();
                assert!(got == want, "int32 {what}");
            } else {
                assert!(got == want_f, "f32 {what}");
            }
        }
    }
}

/// The kernels whose threads work alone, dispatched as the Rust side does:
/// channel statistics (the same updates in the same order, nothing
/// contracted, so the CPU's bits; on a GPU the parity test allows other
/// roundings) and the dequantization of random codes (bit for bit).
#[test]
fn metal_thread_kernels_on_the_host_match_cpu() {
    let Some(_) = executor() else { return };
    let mut unit = uniform(0x1234_5678_9abc_def1u64);
    for (rows, channels, block) in [(1usize, 1usize, 1usize), (37, 5, 8), (1000, 300, 128)] {
        let mut x: Vec<f32> = (0..rows * channels)
            .map(|i| 10f32.powi((i % channels % 4) as i32) + unit())
            .collect();
        x[rows * channels / 2] = f32::NAN;
        x[0] = 1e4;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let xc = Tensor::from_slice(&x, (rows, channels), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let want = host(&wb_kernels::stats::channel_stats(&xc, block).unwrap());
            let mut dev = Dev::default();
            let x = upload(&mut dev, &xc);
            let op = ChannelStats { block_rows: block };
            let plan = metal_plan::channel_stats::partials(&op, dtype, rows, channels).unwrap();
            let out = execute(&mut dev, &plan, &[x])[0];
            let got = floats(&dev.run(&[out]).unwrap()[0], DType::F32);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits(),
                    "channel_stats [{rows}, {channels}] {dtype:?} field {} at {i}: MSL {g} CPU {w}",
                    i % 6
                );
            }
        }
    }
    for (bits, n, group) in [
        (Bits::Int8, 64usize, 16usize),
        (Bits::Int4, 64, 32),
        (Bits::Int4, 96, 96),
    ] {
        let rows = 5;
        let cfg = QuantConfig {
            bits,
            group: Some(group),
            clip_ratio: 1.0,
        };
        let codes: Vec<u8> = (0..rows * bits.row_bytes(n))
            .map(|_| ((unit() + 1.0) * 128.0) as u8)
            .collect();
        let scales: Vec<f32> = (0..rows * n / group).map(|_| unit() * 0.1).collect();
        let codes_t = Tensor::from_slice(&codes, (rows, bits.row_bytes(n)), &Device::Cpu).unwrap();
        let scales_t = Tensor::from_slice(&scales, (rows, n / group), &Device::Cpu).unwrap();
        let want = host(&dequantize(&codes_t, &scales_t, &cfg, n).unwrap());
        let mut dev = Dev::default();
        let cb = (dev.new_buffer_with_data(&codes), 0);
        let sb = (dev.new_buffer_with_data(&scales), 0);
        let plan = metal_plan::rotate_quantize::dequantize(bits, n, group, rows);
        let out = execute(&mut dev, &plan, &[cb, sb])[0];
        let got = floats(&dev.run(&[out]).unwrap()[0], DType::F32);
        assert!(
            got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
            "dequantize {bits:?} n {n} group {group}"
        );
    }
}
