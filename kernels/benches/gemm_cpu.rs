//! `gemm_w8a8` on the CPU, every schedule, against candle's f32 matmul on the
//! same shape (the float path) and the naive int32 triple loop, timed
//! alternately (best of `--repeats`) so load on the machine perturbs all
//! alike. `cargo bench -p wb-kernels --bench gemm_cpu -- [--repeats 5]`.
//! Each line: the schedule's time and int8 GOP/s, its speedup over
//! row-major, over candle f32 and over the naive loop (timed on a slice of
//! rows and scaled: it is 10–100× slower).

use std::time::Instant;

use candle_core::{Device, Tensor};
use wb_kernels::gemm::{gemm_i32_cpu, reference_i32, GemmConfig, Schedule};

fn secs<F: FnMut()>(mut f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// splitmix64 codes, never all zeros.
fn codes(seed: u64, len: usize) -> Vec<i8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z >> 56) as i8
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize);
    // (M, N, K): verification and prefill rows against a Llama-3.2-1B
    // q/o projection (2048 × 2048), and squares.
    let shapes = [
        (4, 2048, 2048),
        (16, 2048, 2048),
        (128, 2048, 2048),
        (512, 2048, 2048),
        (512, 512, 512),
        (1024, 1024, 1024),
    ];
    for (m, n, k) in shapes {
        let a = codes(1, m * k);
        let b = codes(2, n * k);
        let af = Tensor::from_vec(
            a.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(),
            (m, k),
            &Device::Cpu,
        )
        .unwrap();
        let bf = Tensor::from_vec(
            b.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(),
            (n, k),
            &Device::Cpu,
        )
        .unwrap();
        let bft = bf.t().unwrap().contiguous().unwrap();
        let mut out = vec![0i32; m * n];
        let naive_rows = m.min(8);
        let ops = 2.0 * (m * n * k) as f64;
        let cfgs: Vec<GemmConfig> = Schedule::ALL
            .iter()
            .map(|&s| GemmConfig::new(if m <= 16 { 4 } else { 32 }, 64, 512, s))
            .collect();
        let mut best = vec![f64::INFINITY; cfgs.len()];
        let (mut t_f32, mut t_naive) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..repeats {
            for (c, t) in cfgs.iter().zip(best.iter_mut()) {
                *t = t.min(secs(|| gemm_i32_cpu(&a, &b, m, n, k, c, &mut out).unwrap()));
            }
            t_f32 = t_f32.min(secs(|| {
                let _ = af.matmul(&bft).unwrap();
            }));
            t_naive = t_naive.min(secs(|| {
                let _ = reference_i32(&a[..naive_rows * k], &b, naive_rows, n, k);
            }));
        }
        let t_naive = t_naive * m as f64 / naive_rows as f64;
        for (c, &t) in cfgs.iter().zip(&best) {
            println!(
                "{{\"op\":\"gemm_w8a8_cpu\",\"m\":{m},\"n\":{n},\"k\":{k},\"tile\":\"{}x{}x{}\",\"schedule\":\"{}\",\"ms\":{:.3},\"gop_per_s\":{:.1},\"vs_row_major\":{:.3},\"vs_candle_f32\":{:.2},\"vs_naive\":{:.1},\"candle_f32_ms\":{:.3}}}",
                c.tile_m,
                c.tile_n,
                c.tile_k,
                c.schedule.name(),
                t * 1e3,
                ops / t / 1e9,
                best[0] / t,
                t_f32 / t,
                t_naive / t,
                t_f32 * 1e3
            );
        }
    }
}
