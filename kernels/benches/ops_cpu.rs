//! Every op on the CPU against its composition from generic candle ops and
//! against memcpy. `cargo bench -p wb-kernels --bench ops_cpu -- [--repeats 5]`.
//!
//! Bandwidth counts the bytes an op must read plus those it must write, once
//! each; memcpy's counts read + written of a copy of the op's input. Each
//! line gives the op's time, the composition's, and their ratio. memcpy and
//! the op are timed alternately, best of `--repeats`, so other load on the
//! machine perturbs both alike.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;
use wb_kernels::hadamard::{hadamard, Direction, HadamardOp, HadamardPlan};
use wb_kernels::quant::{rotate_quantize, Bits, QuantConfig};
use wb_kernels::sample::GumbelSampler;
use wb_kernels::stats::channel_stats;

fn secs<F: FnMut()>(mut f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

struct Bench {
    repeats: usize,
}

impl Bench {
    /// Best times of (memcpy of `bytes_in`, op, composition).
    fn run<A: FnMut(), B: FnMut()>(
        &self,
        bytes_in: usize,
        mut op: A,
        mut comp: B,
    ) -> (f64, f64, f64) {
        let src = vec![1u8; bytes_in];
        let mut dst = vec![0u8; bytes_in];
        let (mut tc, mut to, mut tk) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        op();
        comp();
        for _ in 0..self.repeats {
            tc = tc.min(secs(|| {
                dst.par_chunks_mut(1 << 18)
                    .zip(src.par_chunks(1 << 18))
                    .for_each(|(d, s)| d.copy_from_slice(s))
            }));
            to = to.min(secs(&mut op));
            tk = tk.min(secs(&mut comp));
        }
        (tc, to, tk)
    }
}

fn report(op: &str, detail: &str, bytes: usize, bytes_in: usize, (tc, to, tk): (f64, f64, f64)) {
    let memcpy = 2.0 * bytes_in as f64 / tc / 1e9;
    let gbs = bytes as f64 / to / 1e9;
    println!(
        "{{\"op\":\"{op}\",{detail},\"ms\":{:.3},\"gb_per_s\":{gbs:.2},\"vs_memcpy\":{:.2},\"composition_ms\":{:.3},\"speedup_vs_composition\":{:.1}}}",
        to * 1e3,
        gbs / memcpy,
        tk * 1e3,
        tk / to
    );
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let b = Bench { repeats };
    let cpu = Device::Cpu;
    println!("{{\"threads\":{}}}", rayon::current_num_threads());

    // Hadamard vs a dense product by H/√n (candle matmul), 16 MiB of rows.
    for n in [256usize, 1024, 4096] {
        let rows = (16 << 20) / 4 / n;
        let x = Tensor::rand(-1f32, 1f32, (rows, n), &cpu)?;
        let op = HadamardOp::new(Arc::new(HadamardPlan::pow2(n)?), Direction::Forward);
        let h = hadamard(&Tensor::eye(n, DType::F32, &cpu)?, &op)?
            .t()?
            .contiguous()?;
        let times = b.run(
            rows * n * 4,
            || drop(hadamard(&x, &op).unwrap()),
            || drop(x.matmul(&h).unwrap()),
        );
        report(
            "hadamard",
            &format!("\"n\":{n},\"composition\":\"matmul\""),
            2 * rows * n * 4,
            rows * n * 4,
            times,
        );
    }

    // Rotate + int8 per-token quantization vs matmul + abs/max/div/round/clamp.
    {
        let n = 4096;
        let rows = (16 << 20) / 4 / n;
        let x = Tensor::rand(-1f32, 1f32, (rows, n), &cpu)?;
        let op = HadamardOp::new(Arc::new(HadamardPlan::pow2(n)?), Direction::Forward);
        let h = hadamard(&Tensor::eye(n, DType::F32, &cpu)?, &op)?
            .t()?
            .contiguous()?;
        let cfg = QuantConfig::per_token(Bits::Int8);
        let comp = || {
            let y = x.matmul(&h).unwrap();
            let scale = (y.abs().unwrap().max_keepdim(D::Minus1).unwrap() / 127.0).unwrap();
            let q = y
                .broadcast_div(&scale)
                .unwrap()
                .round()
                .unwrap()
                .clamp(-127f32, 127f32)
                .unwrap();
            drop((q.to_dtype(DType::I64).unwrap(), scale));
        };
        let times = b.run(
            rows * n * 4,
            || drop(rotate_quantize(&x, &op, &cfg).unwrap()),
            comp,
        );
        report(
            "rotate_quantize",
            &format!("\"n\":{n},\"bits\":8,\"composition\":\"matmul+ops\""),
            rows * n * 5 + rows * 4,
            rows * n * 4,
            times,
        );
    }

    // Channel statistics vs mean / centred powers / absmax by candle ops.
    {
        let (rows, channels) = ((16 << 20) / 4 / 4096, 4096);
        let x = Tensor::rand(-1f32, 1f32, (rows, channels), &cpu)?;
        let comp = || {
            let mean = x.mean_keepdim(0).unwrap();
            let c = x.broadcast_sub(&mean).unwrap();
            let c2 = c.sqr().unwrap();
            let m2 = c2.sum(0).unwrap();
            let m3 = (&c2 * &c).unwrap().sum(0).unwrap();
            let m4 = c2.sqr().unwrap().sum(0).unwrap();
            let a = x.abs().unwrap().max(0).unwrap();
            drop((m2, m3, m4, a));
        };
        let times = b.run(
            rows * channels * 4,
            || drop(channel_stats(&x, 1024).unwrap()),
            comp,
        );
        report(
            "channel_stats",
            &format!("\"channels\":{channels},\"composition\":\"ops\""),
            rows * channels * 4,
            rows * channels * 4,
            times,
        );
    }

    // Gumbel sampling vs argmax(logits / T − log(−log(rand))) (candle's RNG).
    {
        let (batch, vocab) = (64, 131_072);
        let x = (Tensor::rand(-1f32, 1f32, (batch, vocab), &cpu)? * 4.0)?;
        let positions: Vec<u64> = (0..batch as u64).collect();
        let s = GumbelSampler {
            seed: 7,
            stream: 0,
            temperature: 0.8,
            top_k: None,
        };
        let comp = || {
            let u = Tensor::rand(1e-7f32, 1f32, (batch, vocab), &cpu).unwrap();
            let g = u
                .log()
                .unwrap()
                .neg()
                .unwrap()
                .log()
                .unwrap()
                .neg()
                .unwrap();
            drop(
                ((&x / 0.8).unwrap() + g)
                    .unwrap()
                    .argmax(D::Minus1)
                    .unwrap(),
            );
        };
        let times = b.run(
            batch * vocab * 4,
            || drop(s.sample(&x, &positions).unwrap()),
            comp,
        );
        report(
            "gumbel_sample",
            &format!("\"batch\":{batch},\"vocab\":{vocab},\"composition\":\"rand+log+argmax\""),
            batch * vocab * 4,
            batch * vocab * 4,
            times,
        );
    }
    Ok(())
}
