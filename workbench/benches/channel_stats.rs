//! The outlier study's statistics pass on CPU against the machine's copy
//! bandwidth.
//!
//! `cargo bench --bench channel_stats -- [--mib 16] [--channels 1024] [--repeats 3]`:
//! a batch of f32 rows is streamed into per-channel accumulators
//! ([`ChannelStats`]: Pébay moments, threshold counts and a log histogram per
//! channel), once on one thread and once split into row chunks on rayon's threads
//! and merged. The pass reads each byte once; memcpy reads and writes it, so a
//! pass "at memcpy speed" would process bytes at half memcpy's read+write rate.

use std::time::Instant;

use rayon::prelude::*;
use workbench::primitives::channel_stats::ChannelStats;

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
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (mib, channels, repeats) = (
        value("--mib", 16),
        value("--channels", 1024),
        value("--repeats", 3),
    );
    let rows = mib * 1024 * 1024 / 4 / channels;
    let data: Vec<f32> = (0..rows * channels)
        .map(|i| ((i.wrapping_mul(2654435761)) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let bytes = (data.len() * 4) as f64;
    let mut copy = vec![0f32; data.len()];
    let t_copy = best_of(repeats, || {
        copy.par_chunks_mut(1 << 16)
            .zip(data.par_chunks(1 << 16))
            .for_each(|(d, s)| d.copy_from_slice(s));
    });
    let copy_gbs = 2.0 * bytes / t_copy / 1e9;
    let t_one = best_of(repeats, || {
        let mut s = ChannelStats::new(channels);
        s.push_rows(&data).expect("rows of `channels` values");
        std::hint::black_box(&s);
    });
    let threads = rayon::current_num_threads();
    let t_par = best_of(repeats, || {
        let chunk = rows.div_ceil(threads) * channels;
        let parts: Vec<ChannelStats> = data
            .par_chunks(chunk)
            .map(|c| {
                let mut s = ChannelStats::new(channels);
                s.push_rows(c).expect("rows of `channels` values");
                s
            })
            .collect();
        let mut all = ChannelStats::new(channels);
        for p in &parts {
            all.merge(p);
        }
        std::hint::black_box(&all);
    });
    for (name, t) in [("one_thread", t_one), ("all_threads_merged", t_par)] {
        let gbs = bytes / t / 1e9;
        println!(
            "{{\"op\":\"channel_stats\",\"mode\":\"{name}\",\"mib\":{mib},\"channels\":{channels},\"gb_per_s\":{gbs:.3},\"memcpy_gb_per_s\":{copy_gbs:.2},\"vs_memcpy\":{:.4},\"threads\":{threads}}}",
            gbs / copy_gbs
        );
    }
}
