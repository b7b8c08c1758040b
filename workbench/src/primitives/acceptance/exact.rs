//! Closed forms of acceptance probabilities, for distributions p (target) and q
//! (draft) over the same vocabulary.

use super::Rule;
use crate::primitives::distribution::{argmax, entropy};

/// The exact acceptance probability of `rule` with `drafts` drafts, where a
/// closed form exists; `None` otherwise (Gumbel with K >= 2 drafts).
pub fn acceptance(rule: Rule, drafts: usize, p: &[f64], q: &[f64]) -> Option<f64> {
    match rule {
        Rule::Naive => Some(naive(p, q, drafts)),
        Rule::Standard => Some(standard(p, q)),
        Rule::Gumbel if drafts == 1 => Some(gumbel(p, q)),
        Rule::Gumbel => None,
        Rule::Greedy => Some(greedy(p, q)),
        Rule::Typical { epsilon, delta } => Some(typical(p, q, epsilon, delta)),
        Rule::SpecInfer => Some(specinfer(p, q, drafts)),
    }
}

/// Naive rule with K i.i.d. drafts: `sum_x p(x) (1 - (1 - q(x))^K)`; Σ p·q at K = 1.
pub fn naive(p: &[f64], q: &[f64], drafts: usize) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&pi, &qi)| pi * inclusion(qi, drafts))
        .sum()
}

/// Probability that a token of draft probability `q` is among K i.i.d. drafts.
fn inclusion(q: f64, drafts: usize) -> f64 {
    // 1 - (1 - q)^K, written to keep precision for small q.
    -(drafts as f64 * (-q).ln_1p()).exp_m1()
}

/// Speculative sampling: `sum_x min(p(x), q(x)) = 1 - TV(p, q)`.
pub fn standard(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(a, b)| a.min(*b)).sum()
}

/// Gumbel coupling: `sum_x [sum_y max(p_y / p_x, q_y / q_x)]^-1`.
///
/// The inner sum splits at the likelihood ratio r = p/q: for r_y >= r_x the
/// maximum is p_y/p_x, otherwise q_y/q_x. Sorting by r turns the O(V^2) double
/// sum into prefix sums, O(V log V).
pub fn gumbel(p: &[f64], q: &[f64]) -> f64 {
    // Tokens with p = q = 0 never occur on either side.
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i] > 0.0 || q[i] > 0.0).collect();
    let ratio = |i: usize| {
        if q[i] == 0.0 {
            f64::INFINITY
        } else {
            p[i] / q[i]
        }
    };
    order.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)).then(a.cmp(&b)));
    // p_suffix[k] = sum of p over order[k..]; q before position k accumulates.
    let mut p_suffix = vec![0.0; order.len() + 1];
    for k in (0..order.len()).rev() {
        p_suffix[k] = p_suffix[k + 1] + p[order[k]];
    }
    let mut q_prefix = 0.0;
    let mut total = 0.0;
    for (k, &x) in order.iter().enumerate() {
        if p[x] > 0.0 && q[x] > 0.0 {
            let s = p_suffix[k] / p[x] + q_prefix / q[x];
            total += 1.0 / s;
        }
        q_prefix += q[x];
    }
    total
}

/// The O(V^2) definition of [`gumbel`], for tests.
pub fn gumbel_quadratic(p: &[f64], q: &[f64]) -> f64 {
    let mut total = 0.0;
    for x in 0..p.len() {
        if p[x] == 0.0 || q[x] == 0.0 {
            continue;
        }
        let s: f64 = (0..p.len()).map(|y| (p[y] / p[x]).max(q[y] / q[x])).sum();
        total += 1.0 / s;
    }
    total
}

/// Greedy: 1 if the argmaxes agree (lowest index on ties), else 0.
pub fn greedy(p: &[f64], q: &[f64]) -> f64 {
    if argmax(p) == argmax(q) {
        1.0
    } else {
        0.0
    }
}

/// Medusa's threshold `min(epsilon, delta * exp(-H(p)))`.
pub fn typical_threshold(p: &[f64], epsilon: f64, delta: f64) -> f64 {
    epsilon.min(delta * (-entropy(p)).exp())
}

/// Typical acceptance: `sum_x q(x) [p(x) > threshold]`.
pub fn typical(p: &[f64], q: &[f64], epsilon: f64, delta: f64) -> f64 {
    let threshold = typical_threshold(p, epsilon, delta);
    p.iter()
        .zip(q)
        .filter(|(pi, _)| **pi > threshold)
        .map(|(_, qi)| qi)
        .sum()
}

/// The residual chain of SpecInfer: `p_1 = p`, `p_{k+1} = norm(max(0, p_k - q))`,
/// with `beta_k = sum min(p_k, q)` the acceptance of round k given it is reached.
/// Returns `(residuals p_2..p_{K+1}, betas beta_1..beta_K)`; a residual after a
/// round that always accepts (beta = 1) is never used and left as p_k.
pub fn specinfer_chain(p: &[f64], q: &[f64], drafts: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut current = p.to_vec();
    let mut residuals = Vec::with_capacity(drafts);
    let mut betas = Vec::with_capacity(drafts);
    for _ in 0..drafts {
        let beta = standard(&current, q);
        betas.push(beta);
        let excess: Vec<f64> = current
            .iter()
            .zip(q)
            .map(|(a, b)| (a - b).max(0.0))
            .collect();
        let mass: f64 = excess.iter().sum();
        if mass > 0.0 {
            current = excess.iter().map(|v| v / mass).collect();
        }
        residuals.push(current.clone());
    }
    (residuals, betas)
}

/// SpecInfer with K i.i.d. drafts: `1 - prod_k (1 - beta_k)`.
pub fn specinfer(p: &[f64], q: &[f64], drafts: usize) -> f64 {
    let (_, betas) = specinfer_chain(p, q, drafts);
    1.0 - betas.iter().map(|b| 1.0 - b.min(1.0)).product::<f64>()
}

/// Upper bound on the acceptance of any lossless rule with K i.i.d. drafts from q:
/// `sum_x min(p(x), 1 - (1 - q(x))^K)`; equal to `1 - TV` at K = 1.
pub fn iid_drafts_bound(p: &[f64], q: &[f64], drafts: usize) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&pi, &qi)| pi.min(inclusion(qi, drafts)))
        .sum()
}

/// Expected tokens per target call with draft length gamma and per-position
/// acceptance alpha: `1 + sum_{k<=gamma} alpha^k = (1 - alpha^(gamma+1)) / (1 - alpha)`.
pub fn tokens_per_call(alpha: f64, gamma: usize) -> f64 {
    (0..=gamma).map(|k| alpha.powi(k as i32)).sum()
}

/// Speedup over plain decoding with draft/target cost ratio c:
/// `(1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1))`.
pub fn speedup(alpha: f64, gamma: usize, cost_ratio: f64) -> f64 {
    tokens_per_call(alpha, gamma) / (gamma as f64 * cost_ratio + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(n: usize) -> Vec<f64> {
        vec![1.0 / n as f64; n]
    }

    #[test]
    fn identical_uniform_ten() {
        let p = uniform(10);
        assert!((naive(&p, &p, 1) - 0.1).abs() < 1e-15);
        assert!((standard(&p, &p) - 1.0).abs() < 1e-15);
        assert!((gumbel(&p, &p) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gumbel_sorted_form_matches_the_definition() {
        let p = [0.5, 0.2, 0.0, 0.3, 0.0];
        let q = [0.1, 0.4, 0.3, 0.0, 0.2];
        assert!((gumbel(&p, &q) - gumbel_quadratic(&p, &q)).abs() < 1e-14);
        let p: Vec<f64> = (1..=50).map(|k| 1.0 / k as f64).collect();
        let p = crate::primitives::distribution::normalized(&p);
        let q: Vec<f64> = p.iter().rev().cloned().collect();
        assert!((gumbel(&p, &q) - gumbel_quadratic(&p, &q)).abs() < 1e-13);
        // Between the naive rule and the optimal coupling.
        assert!(gumbel(&p, &q) <= standard(&p, &q) + 1e-15);
        assert!(gumbel(&p, &q) >= naive(&p, &q, 1));
    }

    #[test]
    fn disjoint_supports_never_accept() {
        let p = [0.5, 0.5, 0.0, 0.0];
        let q = [0.0, 0.0, 0.5, 0.5];
        assert_eq!(naive(&p, &q, 3), 0.0);
        assert_eq!(standard(&p, &q), 0.0);
        assert_eq!(gumbel(&p, &q), 0.0);
        assert_eq!(specinfer(&p, &q, 3), 0.0);
    }

    #[test]
    fn specinfer_reduces_to_standard_and_respects_the_bound() {
        let p = [0.6, 0.3, 0.1];
        let q = [0.2, 0.3, 0.5];
        assert!((specinfer(&p, &q, 1) - standard(&p, &q)).abs() < 1e-15);
        for k in 1..6 {
            assert!(specinfer(&p, &q, k) <= iid_drafts_bound(&p, &q, k) + 1e-12);
            assert!(specinfer(&p, &q, k + 1) >= specinfer(&p, &q, k));
        }
    }

    #[test]
    fn tokens_and_speedup() {
        assert_eq!(tokens_per_call(0.0, 5), 1.0);
        assert_eq!(tokens_per_call(1.0, 5), 6.0);
        let (a, g, c) = (0.7f64, 4usize, 0.1);
        let closed = (1.0 - a.powi(g as i32 + 1)) / ((1.0 - a) * (g as f64 * c + 1.0));
        assert!((speedup(a, g, c) - closed).abs() < 1e-12);
    }
}
