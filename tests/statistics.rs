//! Statistical tests of the acceptance rules: exact formulas against Monte Carlo
//! on random pairs, losslessness by chi-square, drafter invariance of the Gumbel
//! rule, and the greedy limit. Seeds are fixed, so every run sees the same draws.

use workbench::primitives::acceptance::simulate::Simulator;
use workbench::primitives::acceptance::{exact, Rule};
use workbench::primitives::distribution::{argmax, with_temperature};
use workbench::primitives::families::{dirichlet, perturbed, reversed, uniform, zipf};
use workbench::primitives::stats::chi_square;

const TYPICAL: Rule = Rule::Typical {
    epsilon: 0.09,
    delta: 0.3,
};

/// Random pairs of several sizes, concentrations and draft qualities.
fn random_pairs() -> Vec<(String, Vec<f64>, Vec<f64>)> {
    let mut pairs = Vec::new();
    let mut seed = 100;
    for &vocab in &[2usize, 5, 17, 100, 1000] {
        for &alpha in &[0.1, 1.0] {
            for &sigma in &[0.2, 1.5] {
                seed += 1;
                let p = dirichlet(vocab, alpha, seed).unwrap();
                let q = perturbed(&p, sigma, seed + 1000);
                pairs.push((format!("V={vocab} alpha={alpha} sigma={sigma}"), p, q));
            }
        }
    }
    let z = zipf(64, 1.2);
    pairs.push(("zipf/reverse".into(), z.clone(), reversed(&z)));
    pairs
}

#[test]
fn exact_formulas_agree_with_monte_carlo_on_random_pairs() {
    let trials = 20_000;
    let mut checked = 0;
    let mut outside = Vec::new();
    for (name, p, q) in random_pairs() {
        for (rule, drafts) in [
            (Rule::Naive, 1),
            (Rule::Naive, 3),
            (Rule::Standard, 1),
            (Rule::Gumbel, 1),
            (Rule::Greedy, 1),
            (TYPICAL, 1),
            (Rule::SpecInfer, 2),
            (Rule::SpecInfer, 4),
        ] {
            let exact = exact::acceptance(rule, drafts, &p, &q).unwrap();
            let outcome = Simulator::new(rule, drafts, &p, &q).run(5, trials, false);
            let estimate = outcome.accepted as f64 / trials as f64;
            // Five standard errors, with a floor for rates near 0 or 1.
            let se = (exact * (1.0 - exact) / trials as f64)
                .sqrt()
                .max(1.0 / trials as f64);
            checked += 1;
            if (estimate - exact).abs() > 5.0 * se {
                outside.push(format!(
                    "{name} {} K={drafts}: exact {exact}, estimate {estimate}",
                    rule.name()
                ));
            }
        }
    }
    assert!(checked >= 150);
    assert!(
        outside.is_empty(),
        "outside 5 standard errors:\n{}",
        outside.join("\n")
    );
}

#[test]
fn uniform_ten_identical_distributions() {
    let p = uniform(10);
    let trials = 100_000;
    let rate = |rule| {
        Simulator::new(rule, 1, &p, &p)
            .run(3, trials, false)
            .accepted as f64
            / trials as f64
    };
    let naive = rate(Rule::Naive);
    assert!(
        (naive - 0.1).abs() < 5.0 * (0.09f64 / trials as f64).sqrt(),
        "naive {naive}"
    );
    assert_eq!(rate(Rule::Standard), 1.0);
    assert_eq!(rate(Rule::Gumbel), 1.0);
    assert!((exact::naive(&p, &p, 1) - 0.1).abs() < 1e-12);
    assert!((exact::gumbel(&p, &p) - 1.0).abs() < 1e-12);
}

#[test]
fn lossless_rules_emit_the_target_distribution() {
    let trials = 60_000;
    let pairs = [
        (
            "handmade",
            vec![0.4, 0.25, 0.15, 0.12, 0.08],
            vec![0.7, 0.1, 0.1, 0.05, 0.05],
        ),
        (
            "dirichlet40",
            dirichlet(40, 0.5, 1).unwrap(),
            perturbed(&dirichlet(40, 0.5, 1).unwrap(), 1.0, 2),
        ),
        (
            "disjointish",
            vec![0.5, 0.5, 0.0, 0.0],
            vec![0.01, 0.0, 0.5, 0.49],
        ),
    ];
    for (name, p0, q0) in &pairs {
        for temperature in [1.0, 0.6] {
            let p = with_temperature(p0, temperature);
            let q = with_temperature(q0, temperature);
            for (rule, drafts) in [
                (Rule::Naive, 1),
                (Rule::Standard, 1),
                (Rule::Gumbel, 1),
                (Rule::Gumbel, 3),
                (Rule::SpecInfer, 2),
                (Rule::SpecInfer, 4),
            ] {
                let outcome = Simulator::new(rule, drafts, &p, &q).run(9, trials, false);
                let test = chi_square(&outcome.emitted, &p);
                assert!(
                    test.p_value > 1e-3,
                    "{name} T={temperature} {} K={drafts}: chi2 {} dof {} p {}",
                    rule.name(),
                    test.statistic,
                    test.dof,
                    test.p_value
                );
            }
        }
    }
}

#[test]
fn the_test_detects_lossy_rules() {
    // The same test must have the power to reject a rule that changes the output.
    let p = vec![0.4, 0.25, 0.15, 0.12, 0.08];
    let q = vec![0.7, 0.1, 0.1, 0.05, 0.05];
    for rule in [TYPICAL, Rule::Greedy] {
        let outcome = Simulator::new(rule, 1, &p, &q).run(9, 60_000, false);
        assert!(
            chi_square(&outcome.emitted, &p).p_value < 1e-6,
            "{} passed",
            rule.name()
        );
    }
}

#[test]
fn gumbel_output_does_not_depend_on_the_drafter() {
    let p = dirichlet(200, 0.5, 11).unwrap();
    let drafts = [
        p.clone(),
        perturbed(&p, 0.3, 12),
        perturbed(&p, 3.0, 13),
        reversed(&p),
        uniform(200),
    ];
    for k in [1, 4] {
        let sims: Vec<Simulator> = drafts
            .iter()
            .map(|q| Simulator::new(Rule::Gumbel, k, &p, q))
            .collect();
        let mut acceptance = vec![0u32; drafts.len()];
        for position in 0..5_000 {
            let emitted: Vec<u32> = sims
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (accepted, token) = s.trial(42, position);
                    acceptance[i] += accepted as u32;
                    token
                })
                .collect();
            assert!(
                emitted.iter().all(|&t| t == emitted[0]),
                "position {position}: {emitted:?}"
            );
        }
        // The drafters do differ in how often they are accepted.
        assert!(acceptance[0] == 5_000 || k > 1);
        assert!(acceptance[3] < acceptance[1]);
    }
}

#[test]
fn zero_temperature_reduces_every_rule_to_greedy() {
    let p0 = dirichlet(30, 1.0, 3).unwrap();
    for (q0, agree) in [(perturbed(&p0, 0.1, 4), true), (reversed(&p0), false)] {
        let p = with_temperature(&p0, 0.0);
        let q = with_temperature(&q0, 0.0);
        assert_eq!(argmax(&p0) == argmax(&q0), agree);
        let greedy = exact::greedy(&p, &q);
        for rule in [Rule::Naive, Rule::Standard, Rule::Gumbel, Rule::Greedy] {
            let outcome = Simulator::new(rule, 1, &p, &q).run(1, 2_000, false);
            assert_eq!(outcome.accepted as f64 / 2_000.0, greedy, "{}", rule.name());
            assert_eq!(
                outcome.emitted[argmax(&p0)],
                2_000,
                "{} must emit argmax p",
                rule.name()
            );
            assert_eq!(exact::acceptance(rule, 1, &p, &q).unwrap(), greedy);
        }
    }
}
