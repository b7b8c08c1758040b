//! GPU timings of every op against the device-to-device copy bandwidth
//! measured in the same run. `cargo bench -p wb-kernels --features cuda
//! --bench gpu` (or `--features metal`). Bandwidth counts the bytes an op
//! must read plus those it must write, once each; "vs_copy" divides it by the
//! copy's (bytes read + written over time): on CUDA a driver device-to-device
//! memcpy of 256 MiB into a preallocated buffer (`cuMemcpyDtoDAsync`), on
//! Metal a `Tensor::copy`. `Tensor::copy` on CUDA (which allocates its
//! output) is printed too: candle's allocation per call costs about as much
//! as it does for every out-of-place op here, which the in-place Hadamard
//! rows avoid.
//!
//! Timing: after two warm-up calls, batches of calls back to back, each
//! ended by a device synchronisation: at least `ITERS` calls and at least
//! `BATCH_SECS` of work a batch (`--iters N`: exactly N calls); the median
//! over `REPS` such batches, per call. `host_ms` is the time to issue a
//! batch's calls per call. Inputs are random (never zeros).

#[cfg(any(feature = "cuda", feature = "metal"))]
mod gpu {
    use std::sync::Arc;
    use std::time::Instant;

    use candle_core::{DType, Device, Tensor};
    use wb_kernels::hadamard::{hadamard, hadamard_inplace, Direction, HadamardOp, HadamardPlan};
    use wb_kernels::quant::{rotate_quantize, Bits, QuantConfig};
    use wb_kernels::sample::GumbelSampler;
    use wb_kernels::stats::channel_stats;
    use wb_kernels::test_support::base;

    /// Fewest calls in a timed batch.
    const ITERS: usize = 10;
    /// Device time a timed batch aims at at least: a batch ends with a
    /// synchronisation, whose fixed latency (several µs) would otherwise
    /// count against ops of a few µs a call.
    const BATCH_SECS: f64 = 2e-3;
    const REPS: usize = 7;
    /// `--iters N`: calls a batch, fixed (0: by `BATCH_SECS`).
    static FIXED_ITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    const BATCH_BYTES: usize = 256 << 20;

    /// Seconds per call, and the host's share: the time to issue a batch's
    /// calls (before the synchronisation) per call. When `host` is close to
    /// `secs` the host path, not the device, sets the pace.
    #[derive(Clone, Copy)]
    struct Timing {
        secs: f64,
        host: f64,
        iters: usize,
    }

    impl Timing {
        /// A time from CUDA events, with no host figure.
        #[cfg(feature = "cuda")]
        fn device(secs: f64, iters: usize) -> Self {
            Timing {
                secs,
                host: f64::NAN,
                iters,
            }
        }
    }

    fn time<F: FnMut()>(dev: &Device, mut f: F) -> Timing {
        f();
        f();
        dev.synchronize().unwrap();
        // The batch size from a first batch of ITERS calls (one call alone
        // is mostly its synchronisation's latency).
        let t = Instant::now();
        for _ in 0..ITERS {
            f();
        }
        dev.synchronize().unwrap();
        let each = t.elapsed().as_secs_f64() / ITERS as f64;
        let iters = match FIXED_ITERS.load(std::sync::atomic::Ordering::Relaxed) {
            0 => ((BATCH_SECS / each).ceil() as usize).clamp(ITERS, 2000),
            n => n,
        };
        let (mut per, mut host) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            host.push(t.elapsed().as_secs_f64() / iters as f64);
            dev.synchronize().unwrap();
            per.push(t.elapsed().as_secs_f64() / iters as f64);
        }
        per.sort_by(f64::total_cmp);
        host.sort_by(f64::total_cmp);
        Timing {
            secs: per[REPS / 2],
            host: host[REPS / 2],
            iters,
        }
    }

    fn random(dev: &Device, shape: (usize, usize), dtype: DType) -> Tensor {
        Tensor::rand(-1f32, 1f32, shape, dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn line(op: &str, detail: &str, bytes: f64, t: Timing, copy: f64) {
        let gbs = bytes / t.secs / 1e9;
        let host = if t.host.is_finite() {
            format!(",\"host_ms\":{:.4}", t.host * 1e3)
        } else {
            String::new()
        };
        println!(
            "{{\"op\":\"{op}\",{detail},\"ms\":{:.4},\"gb_per_s\":{gbs:.1},\"vs_copy\":{:.3},\"calls\":{}{host}}}",
            t.secs * 1e3,
            gbs / copy,
            t.iters
        );
    }

    pub fn main() {
        #[cfg(feature = "cuda")]
        let dev = Device::new_cuda(0).expect("CUDA device 0");
        #[cfg(all(feature = "metal", not(feature = "cuda")))]
        let dev = Device::new_metal(0).expect("Metal device 0");
        let args: Vec<String> = std::env::args().collect();
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .cloned();
        if let Some(n) = args
            .iter()
            .position(|a| a == "--iters")
            .and_then(|i| args.get(i + 1))
        {
            let n: usize = n.parse().expect("--iters takes a number of calls");
            FIXED_ITERS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
        }
        let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));

        // A few in-place transforms (base and transpose kernels) and
        // sampling calls for a profiler (ncu) to look at.
        #[cfg(feature = "cuda")]
        if args.iter().any(|a| a == "--profile") {
            for (dtype, k, variant) in [
                (DType::BF16, 10u32, 0u32),
                (DType::BF16, 10, 5),
                (DType::F32, 14, 0),
                (DType::F32, 14, 6),
            ] {
                wb_kernels::cuda::hadamard::EPT_SHIFT
                    .store(variant, std::sync::atomic::Ordering::Relaxed);
                let n = 1usize << k;
                let rows = BATCH_BYTES / dtype.size_in_bytes() / n;
                let x = random(&dev, (rows, n), dtype);
                let op =
                    HadamardOp::new(Arc::new(HadamardPlan::pow2(n).unwrap()), Direction::Forward);
                for _ in 0..3 {
                    hadamard_inplace(&x, &op).unwrap();
                }
                dev.synchronize().unwrap();
            }
            let x = (random(&dev, (64, 131_072), DType::F32) * 4.0).unwrap();
            let positions: Vec<u64> = (0..64).collect();
            let s = GumbelSampler {
                seed: 7,
                stream: 0,
                temperature: 0.8,
                top_k: None,
            };
            for filter in [0, 4, wb_kernels::cuda::gumbel_sample::AUTO] {
                wb_kernels::cuda::gumbel_sample::FILTER
                    .store(filter, std::sync::atomic::Ordering::Relaxed);
                for _ in 0..2 {
                    let _ = s.sample(&x, &positions).unwrap();
                }
            }
            dev.synchronize().unwrap();
            return;
        }

        let src = random(&dev, (BATCH_BYTES / 4 / 1024, 1024), DType::F32);
        let t_copy = time(&dev, || {
            let _ = src.copy().unwrap();
        });
        let candle_copy = 2.0 * BATCH_BYTES as f64 / t_copy.secs / 1e9;
        println!(
            "{{\"op\":\"candle_tensor_copy\",\"mib\":256,\"ms\":{:.4},\"gb_per_s\":{candle_copy:.1}}}",
            t_copy.secs * 1e3
        );
        #[cfg(feature = "cuda")]
        let copy = {
            use candle_core::Storage;
            let Device::Cuda(cd) = &dev else {
                unreachable!()
            };
            let (st, _) = src.storage_and_layout();
            let Storage::Cuda(cs) = &*st else {
                unreachable!()
            };
            let from = cs.as_cuda_slice::<f32>().unwrap();
            // SAFETY: written by the copy before anything reads it.
            let mut to = unsafe { cd.alloc::<f32>(BATCH_BYTES / 4) }.unwrap();
            let t = time(&dev, || cd.memcpy_dtod(from, &mut to).unwrap()).secs;
            let gbs = 2.0 * BATCH_BYTES as f64 / t / 1e9;
            println!(
                "{{\"op\":\"copy\",\"how\":\"cuMemcpyDtoDAsync\",\"mib\":256,\"ms\":{:.4},\"gb_per_s\":{gbs:.1}}}",
                t * 1e3
            );
            gbs
        };
        #[cfg(not(feature = "cuda"))]
        let copy = candle_copy;
        drop(src);

        if run("hadamard") {
            for dtype in [DType::F32, DType::BF16] {
                let eb = dtype.size_in_bytes();
                let mut orders: Vec<(usize, u32)> = (8..=15).map(|k| (1, k)).collect();
                orders.extend([(180, 6), (12, 8)]);
                for (m, k) in orders {
                    let p = Arc::new(HadamardPlan::new(m << k, m, &base(m)).unwrap());
                    let n = p.n();
                    let rows = BATCH_BYTES / eb / n;
                    let x = random(&dev, (rows, n), dtype);
                    let op = HadamardOp::new(p, Direction::Forward);
                    let bytes = 2.0 * (rows * n * eb) as f64;
                    // Tuning variants of the power-of-two kernel (CUDA only).
                    #[cfg(feature = "cuda")]
                    let shifts: &[u32] = if m == 1 {
                        &[wb_kernels::cuda::hadamard::AUTO, 0, 1, 2, 3, 4, 5, 6, 7]
                    } else {
                        &[wb_kernels::cuda::hadamard::AUTO]
                    };
                    #[cfg(not(feature = "cuda"))]
                    let shifts: &[u32] = &[u32::MAX];
                    for &shift in shifts {
                        #[cfg(feature = "cuda")]
                        wb_kernels::cuda::hadamard::EPT_SHIFT
                            .store(shift, std::sync::atomic::Ordering::Relaxed);
                        let variant = if shift == u32::MAX {
                            "\"auto\"".to_string()
                        } else {
                            shift.to_string()
                        };
                        let detail = format!(
                            "\"dtype\":\"{dtype:?}\",\"n\":{n},\"m\":{m},\"variant\":{variant}"
                        );
                        let t = time(&dev, || {
                            let _ = hadamard(&x, &op).unwrap();
                        });
                        line("hadamard", &detail, bytes, t, copy);
                        let t = time(&dev, || hadamard_inplace(&x, &op).unwrap());
                        line("hadamard_inplace", &detail, bytes, t, copy);
                    }
                    #[cfg(feature = "cuda")]
                    wb_kernels::cuda::hadamard::EPT_SHIFT.store(
                        wb_kernels::cuda::hadamard::AUTO,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
        }

        if run("rotate_quantize") {
            for dtype in [DType::F32, DType::BF16] {
                let eb = dtype.size_in_bytes();
                for n in [1024usize, 4096, 16384] {
                    let p = Arc::new(HadamardPlan::pow2(n).unwrap());
                    let op = HadamardOp::new(p, Direction::Forward);
                    let rows = BATCH_BYTES / eb / n;
                    let x = random(&dev, (rows, n), dtype);
                    for (bits, group) in [
                        (Bits::Int8, None),
                        (Bits::Int4, None),
                        (Bits::Int4, Some(128)),
                    ] {
                        let cfg = QuantConfig {
                            bits,
                            group,
                            clip_ratio: 1.0,
                        };
                        let g = group.unwrap_or(n);
                        let bytes =
                            (rows * n * eb + rows * bits.row_bytes(n) + rows * (n / g) * 4) as f64;
                        let t = time(&dev, || {
                            let _ = rotate_quantize(&x, &op, &cfg).unwrap();
                        });
                        let detail = format!(
                            "\"dtype\":\"{dtype:?}\",\"n\":{n},\"bits\":\"{bits:?}\",\"group\":{g}"
                        );
                        line("rotate_quantize", &detail, bytes, t, copy);
                        #[cfg(feature = "cuda")]
                        {
                            let ms = wb_kernels::quant::cuda_rotate_quantize_kernel_ms(
                                &x, &op, &cfg, 20,
                            )
                            .unwrap();
                            line(
                                "rotate_quantize_kernel_only",
                                &format!("{detail},\"timing\":\"cuda events\""),
                                bytes,
                                Timing::device(ms * 1e-3, 20),
                                copy,
                            );
                        }
                    }
                }
            }
        }

        if run("channel_stats") {
            for (channels, block) in [(4096usize, 1024usize), (11008, 1024)] {
                let rows = BATCH_BYTES / 4 / channels;
                let x = random(&dev, (rows, channels), DType::F32);
                let blocks = rows.div_ceil(block);
                let bytes = (rows * channels * 4 + blocks * channels * 24) as f64;
                let t = time(&dev, || {
                    let _ = channel_stats(&x, block).unwrap();
                });
                line(
                    "channel_stats",
                    &format!("\"channels\":{channels},\"block_rows\":{block}"),
                    bytes,
                    t,
                    copy,
                );
            }
        }

        if run("gumbel") {
            for (dtype, top_k) in [
                (DType::F32, None),
                (DType::BF16, None),
                (DType::F32, Some(50)),
            ] {
                let (batch, vocab) = (64, 131_072);
                let x = (random(&dev, (batch, vocab), DType::F32) * 4.0)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let positions: Vec<u64> = (0..batch as u64).collect();
                let s = GumbelSampler {
                    seed: 7,
                    stream: 0,
                    temperature: 0.8,
                    top_k,
                };
                let bytes = (batch * vocab * dtype.size_in_bytes()) as f64;
                let k = top_k.map_or("null".into(), |k| k.to_string());
                // The CUDA kernel's filters (auto = the default), whole call
                // and kernel alone.
                #[cfg(feature = "cuda")]
                let filters: &[u32] = if top_k.is_none() {
                    let a = wb_kernels::cuda::gumbel_sample::AUTO;
                    &[a, 0, 1, 2, 3, 4, a]
                } else {
                    &[wb_kernels::cuda::gumbel_sample::AUTO]
                };
                #[cfg(not(feature = "cuda"))]
                let filters: &[u32] = &[u32::MAX];
                for &filter in filters {
                    #[cfg(feature = "cuda")]
                    wb_kernels::cuda::gumbel_sample::FILTER
                        .store(filter, std::sync::atomic::Ordering::Relaxed);
                    let f = if filter == u32::MAX {
                        "\"auto\"".to_string()
                    } else {
                        filter.to_string()
                    };
                    let t = time(&dev, || {
                        let _ = s.sample(&x, &positions).unwrap();
                    });
                    line(
                        "gumbel_sample",
                        &format!(
                            "\"dtype\":\"{dtype:?}\",\"batch\":{batch},\"vocab\":{vocab},\"top_k\":{k},\"filter\":{f}"
                        ),
                        bytes,
                        t,
                        copy,
                    );
                    #[cfg(feature = "cuda")]
                    if top_k.is_none() {
                        let ms = wb_kernels::sample::cuda_main_kernel_ms(&s, &x, &positions, 50)
                            .unwrap();
                        line(
                            "gumbel_sample_kernel_only",
                            &format!("\"dtype\":\"{dtype:?}\",\"batch\":{batch},\"vocab\":{vocab},\"filter\":{f},\"timing\":\"cuda events\""),
                            bytes,
                            Timing::device(ms * 1e-3, 50),
                            copy,
                        );
                    }
                }
                #[cfg(feature = "cuda")]
                if top_k.is_none() {
                    let t = time(&dev, || {
                        let _ = s.sample_cuda_exact_only(&x, &positions).unwrap();
                    });
                    line(
                        "gumbel_sample_exact_only",
                        &format!("\"dtype\":\"{dtype:?}\",\"batch\":{batch},\"vocab\":{vocab}"),
                        bytes,
                        t,
                        copy,
                    );
                }
            }
            llm_like_sampling(&dev, copy);
        }
    }

    /// The sampler on logits shaped like a language model's, [64, 131072]
    /// f32, T = 0.8: a bulk N(0, 2.5²) and 16 tokens a row at 18–22
    /// (synthetic, seeded): a few tokens far above the rest, so the
    /// filters' bar rises faster than with the uniform logits above.
    fn llm_like_sampling(dev: &Device, copy: f64) {
        let (batch, vocab) = (64usize, 131_072usize);
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut unit = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 + 0.5) / (1u64 << 24) as f32
        };
        let mut host: Vec<f32> = (0..batch * vocab)
            .map(|_| {
                let (u, v) = (unit(), unit());
                2.5 * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        for row in 0..batch {
            for _ in 0..16 {
                let i = ((unit() * vocab as f32) as usize).min(vocab - 1);
                host[row * vocab + i] = 18.0 + 4.0 * unit();
            }
        }
        let x = Tensor::from_vec(host, (batch, vocab), dev).unwrap();
        let positions: Vec<u64> = (0..batch as u64).collect();
        let s = GumbelSampler {
            seed: 7,
            stream: 0,
            temperature: 0.8,
            top_k: None,
        };
        let bytes = (batch * vocab * 4) as f64;
        let detail = format!("\"dtype\":\"F32\",\"batch\":{batch},\"vocab\":{vocab},\"top_k\":null,\"logits\":\"llm_like\"");
        let t = time(dev, || {
            let _ = s.sample(&x, &positions).unwrap();
        });
        line("gumbel_sample", &detail, bytes, t, copy);
        #[cfg(feature = "cuda")]
        {
            let ms = wb_kernels::sample::cuda_main_kernel_ms(&s, &x, &positions, 50).unwrap();
            line(
                "gumbel_sample_kernel_only",
                &format!("{detail},\"timing\":\"cuda events\""),
                bytes,
                Timing::device(ms * 1e-3, 50),
                copy,
            );
        }
    }
}

fn main() {
    #[cfg(any(feature = "cuda", feature = "metal"))]
    gpu::main();
    #[cfg(not(any(feature = "cuda", feature = "metal")))]
    eprintln!("gpu bench: build with --features cuda or --features metal");
}
