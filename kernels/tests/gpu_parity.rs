//! GPU parity tests: every op on the GPU against the CPU implementation (which
//! the unit tests check against plain references), on random shapes,
//! non-power-of-two orders, odd batch sizes and extreme values. The same tests
//! serve CUDA and Metal: `cargo test -p wb-kernels --features cuda --test
//! gpu_parity` on an NVIDIA machine, `--features metal` on an Apple one.
//! Without either feature this file is empty.
//!
//! Outputs are poisoned: before each op, a large buffer of NaN is allocated
//! and freed on the device, so memory an op forgets to write reads as NaN
//! (the CUDA allocator reuses freed blocks) and fails the comparison.
#![cfg(any(feature = "cuda", feature = "metal"))]

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use wb_kernels::hadamard::{hadamard, hadamard_inplace, Direction, HadamardOp, HadamardPlan};
use wb_kernels::quant::{dequantize, rotate_fake_quant, rotate_quantize, Bits, QuantConfig};
use wb_kernels::sample::GumbelSampler;
use wb_kernels::stats::{channel_stats, merge_partials};
use wb_kernels::test_support::{base, f32_bits, rel_err};

/// The GPU under test: CUDA device 0 or the default Metal device. A build
/// with a GPU feature but no usable device fails rather than skips.
fn gpu() -> Device {
    #[cfg(feature = "cuda")]
    return Device::new_cuda(0).expect("CUDA device 0");
    #[cfg(all(feature = "metal", not(feature = "cuda")))]
    return Device::new_metal(0).expect("Metal device 0");
}

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

fn poison(dev: &Device) {
    let n = 64 << 20;
    let t = Tensor::full(f32::NAN, n, dev).expect("poison");
    drop(t);
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn plan(m: usize, k: u32) -> Arc<HadamardPlan> {
    Arc::new(HadamardPlan::new(m << k, m, &base(m)).unwrap())
}

fn orders() -> Vec<(usize, u32)> {
    let mut o: Vec<(usize, u32)> = (0..=15).map(|k| (1, k)).collect();
    o.extend([(12, 0), (12, 3), (20, 1), (44, 6), (180, 2), (12, 10)]);
    o
}

#[test]
fn hadamard_matches_cpu() {
    let dev = gpu();
    let mut rng = Rng(1);
    for (m, k) in orders() {
        let p = plan(m, k);
        let n = p.n();
        let rows = [1, 3, 7, 33][rng.below(4)].min(((1 << 20) / n).max(1)) | 1;
        let x = rng.vec(rows * n);
        let signs: Vec<f32> = (0..n)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 1e-2), (DType::F16, 2e-3)] {
                let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let want = host(&hadamard(&xc, &op).unwrap());
                let xg = xc.to_device(&dev).unwrap();
                // The CUDA kernels' variants (more elements per thread, the
                // pipelined, transpose and staged kernels) too.
                #[cfg(feature = "cuda")]
                let shifts: &[u32] = if m == 1 && k >= 8 {
                    &[0, 1, 2, 3, 4, 5, 6, 7]
                } else {
                    &[0]
                };
                #[cfg(not(feature = "cuda"))]
                let shifts: &[u32] = &[0];
                for &shift in shifts {
                    #[cfg(feature = "cuda")]
                    wb_kernels::cuda::hadamard::EPT_SHIFT
                        .store(shift, std::sync::atomic::Ordering::Relaxed);
                    poison(&dev);
                    let got = hadamard(&xg, &op).unwrap();
                    assert_eq!(got.dtype(), dtype);
                    let e = rel_err(&host(&got), &want);
                    assert!(
                        e < tol,
                        "n={n} (m={m}) rows={rows} {dir:?} {dtype:?} variant {shift}: rel err {e}"
                    );
                    let xi = xg.copy().unwrap();
                    hadamard_inplace(&xi, &op).unwrap();
                    let e = rel_err(&host(&xi), &want);
                    assert!(
                        e < tol,
                        "in place n={n} {dir:?} {dtype:?} variant {shift}: rel err {e}"
                    );
                }
                #[cfg(feature = "cuda")]
                wb_kernels::cuda::hadamard::EPT_SHIFT.store(
                    wb_kernels::cuda::hadamard::AUTO,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
    }
}

#[test]
fn hadamard_extreme_values() {
    let dev = gpu();
    let p = plan(1, 10);
    let n = p.n();
    let op = HadamardOp::new(p, Direction::Forward);
    let mut x = vec![1.0f32; 3 * n];
    x[5] = 3e38;
    x[6] = 3e38;
    x[n + 7] = f32::NAN;
    x[2 * n + 1] = 1e-40;
    let got = host(&hadamard(&Tensor::from_slice(&x, (3, n), &dev).unwrap(), &op).unwrap());
    assert!(got[..n].iter().any(|v| v.is_infinite()));
    assert!(got[n..2 * n].iter().all(|v| v.is_nan()));
    assert!(got[2 * n..].iter().all(|v| v.is_finite()));
}

#[test]
fn rotate_quantize_matches_cpu() {
    let dev = gpu();
    let mut rng = Rng(2);
    for (m, k) in [
        (1, 1),
        (1, 4),
        (1, 7),
        (1, 10),
        (1, 13),
        (1, 15),
        (12, 3),
        (20, 2),
    ] {
        let p = plan(m, k);
        let n = p.n();
        let rows = (1 + 2 * rng.below(20)).min(((1 << 20) / n).max(1)) | 1;
        let x = rng.vec(rows * n);
        let signs: Vec<f32> = (0..n)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            for bits in [Bits::Int8, Bits::Int4] {
                // Groups within a thread, a warp, several warps (the
                // fused kernel's shared-memory step) and several of each
                // thread's vectors (n / 2).
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
                    for dtype in [DType::F32, DType::BF16] {
                        let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap();
                        let (cc, sc) = rotate_quantize(&xc, &op, &cfg).unwrap();
                        poison(&dev);
                        let (cg, sg) =
                            rotate_quantize(&xc.to_device(&dev).unwrap(), &op, &cfg).unwrap();
                        let (cc, cg) = (
                            cc.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
                            cg.flatten_all()
                                .unwrap()
                                .to_device(&Device::Cpu)
                                .unwrap()
                                .to_vec1::<u8>()
                                .unwrap(),
                        );
                        let what = format!("n={n} {dir:?} {bits:?} {group:?} {dtype:?}");
                        let unpack = |c: &[u8]| -> Vec<i32> {
                            match bits {
                                Bits::Int8 => c.iter().map(|&b| b as i8 as i32).collect(),
                                Bits::Int4 => c
                                    .iter()
                                    .flat_map(|&b| {
                                        [((b << 4) as i8 >> 4) as i32, (b as i8 >> 4) as i32]
                                    })
                                    .collect(),
                            }
                        };
                        let (a, b) = (unpack(&cc), unpack(&cg));
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
                        let e = rel_err(&host(&sg), &host(&sc));
                        assert!(e < 1e-5, "{what}: scales rel err {e}");
                        // Dequantize on the GPU is exact given the codes.
                        let cgt = Tensor::from_vec(cg.clone(), cc.len(), &Device::Cpu)
                            .unwrap()
                            .reshape(
                                sc.dims()
                                    .iter()
                                    .take(1)
                                    .copied()
                                    .chain([cfg.bits.row_bytes(n)])
                                    .collect::<Vec<_>>(),
                            )
                            .unwrap();
                        let sgt = sg.to_device(&Device::Cpu).unwrap();
                        let want = host(&dequantize(&cgt, &sgt, &cfg, n).unwrap());
                        poison(&dev);
                        let got =
                            host(&dequantize(&cgt.to_device(&dev).unwrap(), &sg, &cfg, n).unwrap());
                        assert!(
                            got.iter()
                                .zip(&want)
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{what}: dequantize"
                        );
                        // Fake quant agrees with the CPU's to one step.
                        let fc = host(&rotate_fake_quant(&xc, &op, &cfg).unwrap());
                        poison(&dev);
                        let fg = host(
                            &rotate_fake_quant(&xc.to_device(&dev).unwrap(), &op, &cfg).unwrap(),
                        );
                        let e = rel_err(&fg, &fc);
                        assert!(e < 0.05, "{what}: fake quant rel err {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn channel_stats_match_cpu() {
    let dev = gpu();
    let mut rng = Rng(3);
    for (rows, channels, block) in [(1, 1, 1), (37, 5, 8), (1000, 300, 128), (4096, 1027, 512)] {
        let mut x: Vec<f32> = (0..rows * channels)
            .map(|i| 10f32.powi((i % channels % 4) as i32) + rng.uniform())
            .collect();
        x[rows * channels / 2] = f32::NAN;
        x[0] = 1e4;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let xc = Tensor::from_slice(&x, (rows, channels), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let want = host(&channel_stats(&xc, block).unwrap());
            poison(&dev);
            let gp = channel_stats(&xc.to_device(&dev).unwrap(), block).unwrap();
            let got = host(&gp);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let field = i % 6;
                let tol = [0.0, 1e-5, 1e-3, 1e-2, 1e-3, 0.0][field] * w.abs().max(1.0);
                assert!(
                    (g - w).abs() <= tol,
                    "rows {rows} {dtype:?} field {field} at {i}: {g} vs {w}"
                );
            }
            let mg = merge_partials(&gp).unwrap();
            let mc = merge_partials(&channel_stats(&xc, block).unwrap()).unwrap();
            for (g, c) in mg.iter().zip(&mc) {
                assert_eq!(g.count, c.count);
                assert!((g.mean - c.mean).abs() <= 1e-5 * c.mean.abs().max(1.0));
            }
        }
    }
}

/// Logits: uniform on [0, 6), with `extreme` some −inf, NaN, 7 and −0, and
/// `peaked` shaped like a language model's (a bulk on [−3, 3) and one in
/// 1024 at 25–30), where the filters' bar rises fast and most steps drop
/// every token.
fn logits(rng: &mut Rng, len: usize, extreme: bool, peaked: bool) -> Vec<f32> {
    (0..len)
        .map(|_| match (extreme, rng.below(64)) {
            (true, 0) => f32::NEG_INFINITY,
            (true, 1) => f32::NAN,
            (true, 2) => 7.0,
            (true, 3) => -0.0,
            _ if peaked && rng.below(1024) == 0 => 25.0 + rng.uniform() * 5.0,
            _ if peaked => rng.uniform() * 6.0 - 3.0,
            _ => rng.uniform() * 6.0,
        })
        .collect()
}

#[test]
fn gumbel_tokens_are_bit_identical() {
    let dev = gpu();
    let mut rng = Rng(4);
    // 130 rows: two launches (128 rows of positions per launch).
    let cases: [(usize, usize); 10] = [
        (1, 1),
        (3, 5),
        (2, 31),
        (5, 1000),
        (7, 8195),
        (64, 32_000),
        (4, 131_072),
        (1, 50_257),
        (130, 257),
        // Peaked logits in blocks of several steps.
        (32, 131_072),
    ];
    for (case, &(batch, vocab)) in cases.iter().enumerate() {
        // Top-k 3000 takes the CUDA threshold's fallback (more keys above its
        // pivot than it keeps in shared memory), 1 and 50 its fast path.
        for top_k in [None, Some(1), Some(50), Some(3000)] {
            let s = GumbelSampler {
                seed: rng.next(),
                stream: rng.below(3) as u32,
                temperature: [1.0, 0.6, 1.7][case % 3],
                top_k,
            };
            let peaked = case % 3 == 1 || batch * vocab >= 1 << 22;
            let x = logits(&mut rng, batch * vocab, case % 2 == 1, peaked);
            let positions: Vec<u64> = (0..batch).map(|_| rng.next() >> rng.below(64)).collect();
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let xc = Tensor::from_slice(&x, (batch, vocab), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let want = s.sample(&xc, &positions).unwrap();
                // Every filter of the CUDA kernel (the default last).
                #[cfg(feature = "cuda")]
                let filters: &[u32] = &[0, 1, 2, 3, 4, wb_kernels::cuda::gumbel_sample::AUTO];
                #[cfg(not(feature = "cuda"))]
                let filters: &[u32] = &[u32::MAX];
                for &filter in filters {
                    #[cfg(feature = "cuda")]
                    wb_kernels::cuda::gumbel_sample::FILTER
                        .store(filter, std::sync::atomic::Ordering::Relaxed);
                    poison(&dev);
                    let got = s.sample(&xc.to_device(&dev).unwrap(), &positions).unwrap();
                    let what = format!("[{batch}, {vocab}] {dtype:?} {s:?} filter {filter}");
                    let tw: Vec<u32> = want.tokens.to_vec1().unwrap();
                    let tg: Vec<u32> = got
                        .tokens
                        .to_device(&Device::Cpu)
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    assert_eq!(tg, tw, "{what}: tokens");
                    assert_eq!(
                        f32_bits(&got.scores),
                        f32_bits(&want.scores),
                        "{what}: scores"
                    );
                }
                #[cfg(feature = "cuda")]
                {
                    let exact = s
                        .sample_cuda_exact_only(&xc.to_device(&dev).unwrap(), &positions)
                        .unwrap();
                    let te: Vec<u32> = exact
                        .tokens
                        .to_device(&Device::Cpu)
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    let tw: Vec<u32> = want.tokens.to_vec1().unwrap();
                    assert_eq!(
                        te, tw,
                        "[{batch}, {vocab}] {dtype:?} {s:?}: exact-only kernel"
                    );
                }
            }
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn gumbel_filter_margin_holds_for_every_input() {
    let Device::Cuda(dev) = gpu() else {
        unreachable!()
    };
    let (worst, untrusted) = wb_kernels::sample::cuda_margin_check(&dev).unwrap();
    eprintln!("approximate noise: max |error| {worst:e}; {untrusted} of 2^32 inputs non-finite");
    // The kernel's margin is 2^-10 + 2^-22·|score|; the error must stay well inside.
    assert!(
        worst <= 2f32.powi(-12),
        "approximation error {worst} exceeds 2^-12"
    );
    // The filter trusts every approximation, so none may be non-finite.
    assert_eq!(untrusted, 0, "{untrusted} non-finite approximations");
}

#[cfg(feature = "cuda")]
#[test]
fn gumbel_bucket_bounds_hold_for_every_input() {
    let Device::Cuda(dev) = gpu() else {
        unreachable!()
    };
    let (violations, slack) = wb_kernels::sample::cuda_table_check(&dev).unwrap();
    eprintln!(
        "bucket bounds: {violations} of 2^32 inputs outside their bucket's bounds; smallest slack {slack:e}"
    );
    // The coarse filters skip a token when its upper bound is below another
    // token's lower bound, so every input's exact noise must lie within its
    // bucket's bounds.
    assert_eq!(
        violations, 0,
        "{violations} inputs outside their bucket bounds"
    );
    assert!(slack > 0.0, "smallest slack {slack}");
}

/// The staged kernels loop over row groups within persistent blocks (one
/// group is 1–8 rows); with more rows than resident blocks that loop runs
/// several times, and the row count leaves the last group partial.
#[cfg(feature = "cuda")]
#[test]
fn hadamard_staged_loops_over_rows() {
    let dev = gpu();
    let mut rng = Rng(6);
    for (k, dtype, tol, rows) in [
        (10u32, DType::F32, 1e-5, 8191),
        (12, DType::F32, 1e-5, 2047),
        (14, DType::F32, 1e-5, 601),
        (10, DType::BF16, 1e-2, 8191),
        (11, DType::BF16, 1e-2, 4095),
        (13, DType::BF16, 1e-2, 1023),
        (14, DType::BF16, 1e-2, 601),
    ] {
        let p = plan(1, k);
        let n = p.n();
        let x = rng.vec(rows * n);
        let signs: Vec<f32> = (0..n)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let want = host(&hadamard(&xc, &op).unwrap());
            let xg = xc.to_device(&dev).unwrap();
            for variant in [5u32, 6, 7] {
                wb_kernels::cuda::hadamard::EPT_SHIFT
                    .store(variant, std::sync::atomic::Ordering::Relaxed);
                poison(&dev);
                let got = hadamard(&xg, &op);
                let xi = xg.copy().unwrap();
                let inplace = hadamard_inplace(&xi, &op);
                wb_kernels::cuda::hadamard::EPT_SHIFT.store(
                    wb_kernels::cuda::hadamard::AUTO,
                    std::sync::atomic::Ordering::Relaxed,
                );
                let e = rel_err(&host(&got.unwrap()), &want);
                assert!(
                    e < tol,
                    "n={n} {dtype:?} {dir:?} variant {variant}: rel err {e}"
                );
                inplace.unwrap();
                let e = rel_err(&host(&xi), &want);
                assert!(
                    e < tol,
                    "in place n={n} {dtype:?} {dir:?} variant {variant}: rel err {e}"
                );
            }
        }
    }
}

/// The pipelined kernel loops over rows within persistent blocks; with more
/// rows than blocks (two per multiprocessor) that loop runs several times.
#[cfg(feature = "cuda")]
#[test]
fn hadamard_pipelined_loops_over_rows() {
    let dev = gpu();
    let mut rng = Rng(5);
    for (k, dtype, tol) in [
        (13u32, DType::F32, 1e-5),
        (15, DType::F32, 1e-5),
        (11, DType::BF16, 1e-2),
        (14, DType::BF16, 1e-2),
    ] {
        let p = plan(1, k);
        let n = p.n();
        let rows = 601;
        let x = rng.vec(rows * n);
        let signs: Vec<f32> = (0..n)
            .map(|_| if rng.below(2) == 0 { 1.0 } else { -1.0 })
            .collect();
        for dir in [Direction::Forward, Direction::Transposed] {
            let op = HadamardOp::new(p.clone(), dir).with_signs(&signs).unwrap();
            let xc = Tensor::from_slice(&x, (rows, n), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let want = host(&hadamard(&xc, &op).unwrap());
            wb_kernels::cuda::hadamard::EPT_SHIFT.store(3, std::sync::atomic::Ordering::Relaxed);
            poison(&dev);
            let got = hadamard(&xc.to_device(&dev).unwrap(), &op);
            wb_kernels::cuda::hadamard::EPT_SHIFT.store(
                wb_kernels::cuda::hadamard::AUTO,
                std::sync::atomic::Ordering::Relaxed,
            );
            let e = rel_err(&host(&got.unwrap()), &want);
            assert!(e < tol, "n={n} {dtype:?} {dir:?}: rel err {e}");
        }
    }
}
