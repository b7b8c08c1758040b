//! GPU timings of `gemm_w8a8` for every schedule, on the weight shapes of
//! Llama-3.2-1B, Qwen3-0.6B and Llama-2-7B (verification M = 1..16, prefill
//! M = 128..4096) and square sweeps, with candle's bf16 matmul (cuBLAS) on
//! the same shapes in the same run. `cargo bench -p wb-kernels --features
//! cuda --bench gemm_gpu -- [--csv PATH] [--quick]`; `--profile [--csv PATH]`
//! runs each profiled configuration once, for Nsight Compute, and writes
//! their order to PATH.
//!
//! Timing: inputs rotate over enough copies to exceed 160 MB (3× the H100's
//! 50 MB L2), so no call starts with its operands in L2 from the previous
//! one; after warm-up, batches of back-to-back calls (≥ 3 ms a batch) ended
//! by a device synchronisation, the schedules interleaved batch by batch;
//! the median per call over REPS batches, the fastest and slowest batch as
//! the interval, and the median of the batches' paired ratios to row-major. Launch and candle's output
//! allocation are included (a few µs: visible at M = 1).

#[cfg(feature = "cuda")]
mod gpu {
    use std::fmt::Write as _;
    use std::time::Instant;

    use candle_core::{DType, Device, Tensor};
    use wb_kernels::gemm::{gemm_w8a8_i32, GemmConfig, ScaledGemmOp, Schedule};

    const REPS: usize = 9;
    const ROTATE_BYTES: usize = 160 << 20;

    /// (model, projection, N, K) of each weight (N outputs, K inputs), from
    /// the models' config.json: Llama-3.2-1B hidden 2048, intermediate 8192,
    /// 32 heads and 8 KV heads of 64; Qwen3-0.6B hidden 1024, intermediate
    /// 3072, 16 heads and 8 KV heads of 128; Llama-2-7B hidden 4096,
    /// intermediate 11008, 32 heads of 128 (no GQA).
    pub const WEIGHTS: [(&str, &str, usize, usize); 12] = [
        ("Llama-3.2-1B", "q_o", 2048, 2048),
        ("Llama-3.2-1B", "k_v", 512, 2048),
        ("Llama-3.2-1B", "gate_up", 8192, 2048),
        ("Llama-3.2-1B", "down", 2048, 8192),
        ("Qwen3-0.6B", "q", 2048, 1024),
        ("Qwen3-0.6B", "k_v", 1024, 1024),
        ("Qwen3-0.6B", "o", 1024, 2048),
        ("Qwen3-0.6B", "gate_up", 3072, 1024),
        ("Qwen3-0.6B", "down", 1024, 3072),
        ("Llama-2-7B", "q_k_v_o", 4096, 4096),
        ("Llama-2-7B", "gate_up", 11008, 4096),
        ("Llama-2-7B", "down", 4096, 11008),
    ];
    const MS: [usize; 10] = [1, 2, 4, 8, 16, 128, 512, 1024, 2048, 4096];
    const SQUARES: [usize; 5] = [1024, 2048, 4096, 8192, 16384];

    /// The tile for M rows (fewer wasted rows for skinny products).
    fn tile_for(m: usize) -> (usize, usize) {
        match m {
            0..=16 => (16, 128),
            17..=32 => (32, 128),
            33..=64 => (64, 128),
            _ => (128, 128),
        }
    }

    fn codes(dev: &Device, rows: usize, cols: usize) -> Tensor {
        // Uniform int8 codes: random u8 through f32 (never zeros).
        Tensor::rand(0f32, 256f32, (rows, cols), dev)
            .unwrap()
            .floor()
            .unwrap()
            .to_dtype(DType::U8)
            .unwrap()
    }

    fn sync(dev: &Device) {
        dev.synchronize().unwrap();
    }

    /// (median, min, max) seconds per call of f(i), i the call's index.
    fn time<F: FnMut(usize)>(dev: &Device, mut f: F) -> (f64, f64, f64) {
        for i in 0..3 {
            f(i);
        }
        sync(dev);
        let t = Instant::now();
        f(3);
        sync(dev);
        let one = t.elapsed().as_secs_f64().max(1e-7);
        let iters = ((3e-3 / one).ceil() as usize).clamp(3, 400);
        let mut per = Vec::with_capacity(REPS);
        let mut i = 4;
        for _ in 0..REPS {
            let t = Instant::now();
            for _ in 0..iters {
                f(i);
                i += 1;
            }
            sync(dev);
            per.push(t.elapsed().as_secs_f64() / iters as f64);
        }
        per.sort_by(f64::total_cmp);
        (per[REPS / 2], per[0], per[REPS - 1])
    }

    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    }

    fn median(v: &[f64]) -> f64 {
        sorted(v)[v.len() / 2]
    }

    /// Per-call seconds of `count` variants, REPS batches each, interleaved
    /// (batch r of every variant before batch r + 1 of any); f(variant,
    /// call index). Calls per batch from variant 0 (≥ 3 ms a batch).
    fn time_interleaved<F: FnMut(usize, usize)>(
        dev: &Device,
        count: usize,
        mut f: F,
    ) -> Vec<Vec<f64>> {
        let mut i = 0;
        for o in 0..count {
            for _ in 0..3 {
                f(o, i);
                i += 1;
            }
        }
        sync(dev);
        let t = Instant::now();
        f(0, i);
        i += 1;
        sync(dev);
        let one = t.elapsed().as_secs_f64().max(1e-7);
        let iters = ((3e-3 / one).ceil() as usize).clamp(3, 400);
        let mut per = vec![Vec::with_capacity(REPS); count];
        for _ in 0..REPS {
            for (o, p) in per.iter_mut().enumerate() {
                let t = Instant::now();
                for _ in 0..iters {
                    f(o, i);
                    i += 1;
                }
                sync(dev);
                p.push(t.elapsed().as_secs_f64() / iters as f64);
            }
        }
        per
    }

    struct Case {
        set: &'static str,
        model: &'static str,
        proj: &'static str,
        m: usize,
        n: usize,
        k: usize,
    }

    fn cases(quick: bool) -> Vec<Case> {
        let mut v = Vec::new();
        for &(model, proj, n, k) in &WEIGHTS {
            for &m in &MS {
                v.push(Case {
                    set: "model",
                    model,
                    proj,
                    m,
                    n,
                    k,
                });
            }
        }
        for &s in &SQUARES[..if quick { 3 } else { 5 }] {
            v.push(Case {
                set: "square",
                model: "-",
                proj: "-",
                m: s,
                n: s,
                k: s,
            });
        }
        v
    }

    pub fn main() {
        let dev = Device::new_cuda(0).expect("CUDA device 0");
        let args: Vec<String> = std::env::args().collect();
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let csv_path = arg("--csv");
        if args.iter().any(|a| a == "--profile") {
            profile(&dev, csv_path);
            return;
        }
        let quick = args.iter().any(|a| a == "--quick");
        let mut csv = String::from(
            "set,model,proj,m,n,k,kernel,tile,schedule,median_ms,min_ms,max_ms,tops,speedup_vs_row_major,speedup_paired\n",
        );
        for c in cases(quick) {
            let (m, n, k) = (c.m, c.n, c.k);
            let ops_count = 2.0 * (m * n * k) as f64;
            let copies = (ROTATE_BYTES / (m * k + n * k)).clamp(1, 32);
            let a: Vec<Tensor> = (0..copies).map(|_| codes(&dev, m, k)).collect();
            let b: Vec<Tensor> = (0..copies).map(|_| codes(&dev, n, k)).collect();
            // Row scales then column scales, as gemm_w8a8 concatenates them
            // (done once here, so the timed call is the kernel alone).
            let scales = Tensor::rand(0.5f32, 1.0, m + n, &dev).unwrap();
            let mut tiles = vec![tile_for(m)];
            if c.set == "square" && m >= 4096 {
                tiles.push((256, 128));
            }
            for tile in tiles {
                // All schedules interleaved batch by batch, so drift in the
                // card's clocks affects each alike (the first-timed schedule
                // took every warm-up effect before).
                let ops: Vec<ScaledGemmOp> = Schedule::ALL
                    .iter()
                    .map(|&s| ScaledGemmOp {
                        cfg: GemmConfig::new(tile.0, tile.1, 64, s),
                    })
                    .collect();
                let per = time_interleaved(&dev, ops.len(), |o, i| {
                    let j = i % copies;
                    let _ = a[j].apply_op3_no_bwd(&b[j], &scales, &ops[o]).unwrap();
                });
                let base = median(&per[0]);
                for (o, s) in Schedule::ALL.iter().enumerate() {
                    let med = median(&per[o]);
                    let sp = sorted(&per[o]);
                    let paired: Vec<f64> = (0..REPS).map(|r| per[0][r] / per[o][r]).collect();
                    let line = format!(
                        "{},{},{},{m},{n},{k},gemm_w8a8,{}x{},{},{:.5},{:.5},{:.5},{:.2},{:.3},{:.3}",
                        c.set, c.model, c.proj, tile.0, tile.1, s.name(),
                        med * 1e3, sp[0] * 1e3, sp[REPS - 1] * 1e3,
                        ops_count / med / 1e12, base / med, median(&paired)
                    );
                    println!("{line}");
                    writeln!(csv, "{line}").unwrap();
                }
            }
            drop((a, b));
            // The float path on the same shape: candle's bf16 matmul (cuBLAS),
            // weights [N, K] used transposed as the int8 kernel uses them.
            let copies_f = (ROTATE_BYTES / (2 * (m * k + n * k))).clamp(1, 32);
            let af: Vec<Tensor> = (0..copies_f)
                .map(|_| {
                    Tensor::randn(0f32, 1.0, (m, k), &dev)
                        .unwrap()
                        .to_dtype(DType::BF16)
                        .unwrap()
                })
                .collect();
            let wf: Vec<Tensor> = (0..copies_f)
                .map(|_| {
                    Tensor::randn(0f32, 1.0, (n, k), &dev)
                        .unwrap()
                        .to_dtype(DType::BF16)
                        .unwrap()
                })
                .collect();
            let (med, lo, hi) = time(&dev, |i| {
                let j = i % copies_f;
                let _ = af[j].matmul(&wf[j].t().unwrap()).unwrap();
            });
            let line = format!(
                "{},{},{},{m},{n},{k},candle_bf16_matmul,-,-,{:.5},{:.5},{:.5},{:.2},,",
                c.set,
                c.model,
                c.proj,
                med * 1e3,
                lo * 1e3,
                hi * 1e3,
                ops_count / med / 1e12
            );
            println!("{line}");
            writeln!(csv, "{line}").unwrap();
        }
        if let Some(p) = csv_path {
            std::fs::write(&p, csv).unwrap();
        }
    }

    /// One launch of each profiled configuration (int32 output: no other
    /// kernels in between), in the order written to `csv_path`.
    fn profile(dev: &Device, csv_path: Option<String>) {
        let shapes: [(&str, usize, usize, usize); 6] = [
            ("square", 8192, 8192, 8192),
            ("square", 16384, 16384, 16384),
            ("Llama-2-7B gate_up", 4096, 11008, 4096),
            ("Llama-2-7B down", 2048, 4096, 11008),
            ("Llama-2-7B gate_up", 16, 11008, 4096),
            ("Llama-3.2-1B gate_up", 512, 8192, 2048),
        ];
        let mut csv = String::from("id,shape,m,n,k,tile,schedule\n");
        let mut id = 0;
        for (name, m, n, k) in shapes {
            let a = codes(dev, m, k);
            let b = codes(dev, n, k);
            let tile = tile_for(m);
            for s in Schedule::ALL {
                let cfg = GemmConfig::new(tile.0, tile.1, 64, s);
                let _ = gemm_w8a8_i32(&a, &b, &cfg).unwrap();
                sync(dev);
                writeln!(
                    csv,
                    "{id},{name},{m},{n},{k},{}x{},{}",
                    tile.0,
                    tile.1,
                    s.name()
                )
                .unwrap();
                id += 1;
            }
        }
        print!("{csv}");
        if let Some(p) = csv_path {
            std::fs::write(&p, csv).unwrap();
        }
    }
}

fn main() {
    #[cfg(feature = "cuda")]
    gpu::main();
    #[cfg(not(feature = "cuda"))]
    eprintln!("gemm_gpu bench: build with --features cuda");
}
