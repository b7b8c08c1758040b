use workbench::primitives::acceptance::simulate::Simulator;
use workbench::primitives::acceptance::{exact, Rule};
use workbench::primitives::families::{dirichlet, perturbed};
fn main() {
    let vocab: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let trials: u64 = std::env::args().nth(2).unwrap().parse().unwrap();
    let p = dirichlet(vocab, 1.0, 1).unwrap();
    let q = perturbed(&p, 0.5, 2);
    let sim = Simulator::new(Rule::Gumbel, 1, &p, &q);
    let o = sim.run(77, trials, false);
    let est = o.accepted as f64 / trials as f64;
    let ex = exact::gumbel(&p, &q);
    let quad = if vocab <= 40000 {
        exact::gumbel_quadratic(&p, &q)
    } else {
        f64::NAN
    };
    let se = (est * (1.0 - est) / trials as f64).sqrt();
    println!(
        "V={vocab} trials={trials} est={est:.5} exact={ex:.6} quad={quad:.6} z={:.2}",
        (est - ex) / se
    );
}
