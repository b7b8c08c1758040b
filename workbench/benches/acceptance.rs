//! Monte-Carlo trials per second of the acceptance simulators, for comparison
//! with the numpy peer `acceptance_numpy.py` on the same pairs.
//!
//! `cargo bench --bench acceptance -- [--seconds S] [--threads N]` prints one JSON
//! object per rule and vocabulary size.

use std::time::Instant;

use workbench::primitives::acceptance::simulate::Simulator;
use workbench::primitives::acceptance::{exact, Rule};
use workbench::primitives::families::{dirichlet, perturbed};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: f64 = value("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let threads: usize = value("--threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for vocab in [10usize, 1000, 32000] {
        // The same kind of pair as the numpy peer: Dirichlet(1) target, noisy draft.
        let p = dirichlet(vocab, 1.0, 1).unwrap();
        let q = perturbed(&p, 0.5, 2);
        for rule in [Rule::Naive, Rule::Standard, Rule::Gumbel] {
            let sim = Simulator::new(rule, 1, &p, &q);
            // Batches sized to about 0.1 s; repeated until `seconds` have passed.
            let per_batch: u64 = match rule {
                Rule::Gumbel => (20_000_000 / vocab as u64).max(64),
                _ => 4_000_000,
            };
            pool.install(|| sim.run(0, per_batch / 4, false)); // warm-up
            let start = Instant::now();
            let (mut trials, mut accepted, mut batch) = (0u64, 0u64, 0u64);
            while start.elapsed().as_secs_f64() < seconds {
                // A new seed per batch: fresh trials, as the peer draws fresh numbers.
                let outcome = pool.install(|| sim.run(1000 + batch, per_batch, false));
                trials += outcome.trials;
                accepted += outcome.accepted;
                batch += 1;
            }
            let elapsed = start.elapsed().as_secs_f64();
            println!(
                "{{\"impl\":\"rust\",\"rule\":\"{}\",\"vocab\":{vocab},\"trials\":{trials},\"seconds\":{elapsed:.3},\"trials_per_s\":{:.1},\"estimate\":{:.6},\"exact\":{:.6},\"threads\":{threads}}}",
                rule.name(),
                trials as f64 / elapsed,
                accepted as f64 / trials as f64,
                exact::acceptance(rule, 1, &p, &q).unwrap_or(f64::NAN),
            );
        }
    }
}
