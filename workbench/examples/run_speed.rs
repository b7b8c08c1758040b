use std::time::Instant;
use workbench::primitives::acceptance::simulate::Simulator;
use workbench::primitives::acceptance::Rule;
use workbench::primitives::families::{dirichlet, perturbed};
fn main() {
    let vocab: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let rule = match std::env::args().nth(2).unwrap().as_str() {
        "naive" => Rule::Naive,
        "gumbel" => Rule::Gumbel,
        _ => Rule::Standard,
    };
    let n: u64 = std::env::args().nth(3).unwrap().parse().unwrap();
    let p = dirichlet(vocab, 1.0, 1).unwrap();
    let q = perturbed(&p, 0.5, 2);
    let sim = Simulator::new(rule, 1, &p, &q);
    let t = Instant::now();
    let o = sim.run(3, n, false);
    println!(
        "{:.1} M trials/s ({})",
        n as f64 / t.elapsed().as_secs_f64() / 1e6,
        o.accepted
    );
}
