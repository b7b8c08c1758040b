//! The fast Hadamard transform on CPU against the machine's copy bandwidth and
//! against a dense product by the same matrix (candle matmul).
//!
//! `cargo bench --bench hadamard -- [--mib 64] [--repeats 5]`: for each n, a batch
//! of `--mib` MiB of f32 rows is transformed in place by [`FwhtPlan`] (the
//! kernel crate's transform, rows split over rayon's threads); effective
//! bandwidth counts bytes read plus bytes written, as memcpy's. memcpy of the
//! same buffer is timed alternately with each transform (best of each), so
//! other load on the machine perturbs both alike.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use workbench::primitives::hadamard::{hadamard, FwhtPlan};

fn best_of<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mib: usize = value("--mib").and_then(|v| v.parse().ok()).unwrap_or(64);
    let repeats: usize = value("--repeats").and_then(|v| v.parse().ok()).unwrap_or(5);
    let floats = mib * 1024 * 1024 / 4;
    let mut data: Vec<f32> = (0..floats)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut copy = vec![0f32; floats];
    let threads = rayon::current_num_threads();
    let sizes: Vec<usize> = (8..=15)
        .map(|k| 1usize << k)
        .chain([172, 344, 688, 1376, 2752, 5504, 11008])
        .collect();
    for n in sizes {
        let plan = FwhtPlan::new(n).map_err(anyhow::Error::msg)?;
        let rows = floats / n;
        let used = rows * n;
        let (mut t_copy, mut t) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..repeats {
            t_copy = t_copy.min(best_of(1, || {
                copy.par_chunks_mut(1 << 16)
                    .zip(data.par_chunks(1 << 16))
                    .for_each(|(d, s)| d.copy_from_slice(s));
            }));
            t = t.min(best_of(1, || plan.apply_rows(&mut data[..used]).unwrap()));
        }
        let copy_gbs = 2.0 * (floats * 4) as f64 / t_copy / 1e9;
        let gbs = 2.0 * (used * 4) as f64 / t / 1e9;
        // Dense product by H/sqrt(n) with candle on a slice of the batch (n ≤ 4096).
        let dense_ratio = if n <= 4096 {
            let h = hadamard(n).map_err(anyhow::Error::msg)?;
            let m: Vec<f32> = h
                .entries
                .iter()
                .map(|&v| v as f32 / (n as f32).sqrt())
                .collect();
            let hm = Tensor::from_vec(m, (n, n), &Device::Cpu)?;
            let sample_rows = (rows / 8).max(1);
            let x = Tensor::from_slice(&data[..sample_rows * n], (sample_rows, n), &Device::Cpu)?;
            let t_dense = best_of(repeats, || {
                let _ = x.matmul(&hm.t().unwrap()).unwrap();
            });
            let dense_gbs = 2.0 * (sample_rows * n * 4) as f64 / t_dense / 1e9;
            format!("{:.2}", gbs / dense_gbs)
        } else {
            "null".into()
        };
        println!(
            "{{\"op\":\"fwht\",\"n\":{n},\"rows\":{rows},\"threads\":{threads},\"gb_per_s\":{gbs:.2},\"memcpy_gb_per_s\":{copy_gbs:.2},\"vs_memcpy\":{:.2},\"vs_dense_matmul\":{dense_ratio}}}",
            gbs / copy_gbs
        );
    }
    Ok(())
}
