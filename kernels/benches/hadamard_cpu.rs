//! The CPU Hadamard transform against memcpy bandwidth (same threads).
//!
//! `cargo bench -p wb-kernels --bench hadamard_cpu -- [--mib 64 | --kib K] [--repeats 5] [--portable]`
//! transforms a batch of `--mib` MiB of f32 rows in place for each order and
//! prints one JSON line per order: GB/s counting bytes read plus bytes written
//! (as for memcpy), and the ratio to memcpy of the same buffer, timed
//! alternately with it.
//! A small `--kib` with `RAYON_NUM_THREADS=1` measures the in-cache compute
//! rate instead of memory bandwidth.

use std::time::Instant;

use rayon::prelude::*;
use wb_kernels::hadamard::{CpuPath, Direction, HadamardPlan};
use wb_kernels::test_support::paley_i;

fn best_of<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let kib = value("--kib").unwrap_or(value("--mib").unwrap_or(64) * 1024);
    let mib = kib as f64 / 1024.0;
    let repeats = value("--repeats").unwrap_or(5);
    let portable = args.iter().any(|a| a == "--portable");
    let floats = kib * 1024 / 4;
    let mut data: Vec<f32> = (0..floats)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut copy = vec![0f32; floats];
    let threads = rayon::current_num_threads();
    // 172 has no Paley I construction; 44·2^k (Paley I, q = 43) has the same
    // 4-row blocking, and 180 (q = 179) costs a little more than 172.
    let mut plans: Vec<HadamardPlan> = (8..=15)
        .map(|k| HadamardPlan::pow2(1 << k).unwrap())
        .collect();
    for m in [12usize, 180] {
        let b = paley_i(m - 1);
        for k in [0u32, 3, 6] {
            plans.push(HadamardPlan::new(m << k, m, &b).unwrap());
        }
    }
    for plan in plans {
        let plan = if portable {
            plan.with_path(CpuPath::Portable)
        } else {
            plan
        };
        let n = plan.n();
        let used = floats / n * n;
        // memcpy and the transform alternate, best of each: other work on the
        // machine then perturbs both alike.
        let (mut t_copy, mut t) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..repeats {
            t_copy = t_copy.min(best_of(1, || {
                copy.par_chunks_mut(1 << 16)
                    .zip(data.par_chunks(1 << 16))
                    .for_each(|(d, s)| d.copy_from_slice(s));
            }));
            t = t.min(best_of(1, || {
                plan.apply(&mut data[..used], Direction::Forward).unwrap()
            }));
        }
        let copy_gbs = 2.0 * (floats * 4) as f64 / t_copy / 1e9;
        let gbs = 2.0 * (used * 4) as f64 / t / 1e9;
        println!(
            "{{\"op\":\"hadamard\",\"n\":{n},\"m\":{},\"path\":\"{:?}\",\"mib\":{mib},\"threads\":{threads},\"gb_per_s\":{gbs:.2},\"memcpy_gb_per_s\":{copy_gbs:.2},\"vs_memcpy\":{:.2}}}",
            plan.m(),
            plan.path(),
            gbs / copy_gbs
        );
    }
}
