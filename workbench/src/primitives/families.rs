//! Generated target/draft pairs: Zipf, Dirichlet, perturbations and reversal.
//!
//! Every random choice draws from Philox keyed by the family's seed, the token
//! index (as position) and a stream per purpose, so a pair is a pure function
//! of its parameters, whatever the order or thread in which it is built.

use rand_distr::{Distribution, Gamma, StandardNormal};
use wb_kernels::philox::PhiloxStream;

use super::distribution::{normalized, softmax};

/// Stream of the Gamma variates of a Dirichlet draw.
const STREAM_DIRICHLET: u32 = 0x0010_0000;
/// Stream of the Gaussian noise of a perturbed draft.
const STREAM_PERTURB: u32 = 0x0011_0000;

/// Adapts a [`PhiloxStream`] to `rand_core`, so `rand_distr`'s samplers can use it.
pub struct PhiloxRng(pub PhiloxStream);

impl rand_core::RngCore for PhiloxRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(4) {
            let bytes = self.0.next_u32().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Uniform distribution over `vocab` tokens.
pub fn uniform(vocab: usize) -> Vec<f64> {
    vec![1.0 / vocab as f64; vocab]
}

/// Zipf distribution: `p(k) ∝ 1 / (k + 1)^exponent` for ranks `k = 0..vocab`.
pub fn zipf(vocab: usize, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (0..vocab)
        .map(|k| ((k + 1) as f64).powf(-exponent))
        .collect();
    normalized(&weights)
}

/// A draw from the symmetric Dirichlet(alpha, ..., alpha) over `vocab` tokens.
///
/// # Errors
/// If `alpha` is not positive and finite.
pub fn dirichlet(vocab: usize, alpha: f64, seed: u64) -> Result<Vec<f64>, String> {
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| format!("Dirichlet alpha {alpha}: {e}"))?;
    let draws: Vec<f64> = (0..vocab as u64)
        .map(|token| {
            let mut rng = PhiloxRng(PhiloxStream::new(seed, token, STREAM_DIRICHLET));
            gamma.sample(&mut rng)
        })
        .collect();
    let total: f64 = draws.iter().sum();
    if total > 0.0 {
        Ok(normalized(&draws))
    } else {
        // Every Gamma variate underflowed (tiny alpha): the limit is a point mass.
        let mut point = vec![0.0; vocab];
        point[0] = 1.0;
        Ok(point)
    }
}

/// `softmax(log p + sigma * N(0, 1))`: a draft whose logits are the target's plus
/// Gaussian noise. Tokens with p = 0 stay impossible.
pub fn perturbed(p: &[f64], sigma: f64, seed: u64) -> Vec<f64> {
    let logits: Vec<f64> = p
        .iter()
        .enumerate()
        .map(|(token, &pi)| {
            if pi == 0.0 {
                return f64::NEG_INFINITY;
            }
            let mut rng = PhiloxRng(PhiloxStream::new(seed, token as u64, STREAM_PERTURB));
            let noise: f64 = StandardNormal.sample(&mut rng);
            pi.ln() + sigma * noise
        })
        .collect();
    softmax(&logits)
}

/// `p` with its token order reversed.
pub fn reversed(p: &[f64]) -> Vec<f64> {
    p.iter().rev().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::distribution::{check_probabilities, total_variation};

    #[test]
    fn families_are_distributions_and_deterministic() {
        let z = zipf(1000, 1.1);
        check_probabilities(&z).unwrap();
        assert!(z[0] > z[1] && z[1] > z[999]);
        let d = dirichlet(500, 0.5, 9).unwrap();
        check_probabilities(&d).unwrap();
        assert_eq!(d, dirichlet(500, 0.5, 9).unwrap());
        assert_ne!(d, dirichlet(500, 0.5, 10).unwrap());
        let q = perturbed(&d, 0.7, 9);
        check_probabilities(&q).unwrap();
        assert_eq!(q, perturbed(&d, 0.7, 9));
        assert!(total_variation(&perturbed(&d, 0.0, 9), &d) < 1e-12);
        assert!(total_variation(&q, &d) > 0.05);
        assert!(dirichlet(10, 0.0, 1).is_err());
    }

    #[test]
    fn dirichlet_mean_is_uniform() {
        // E[p_i] = 1/V: average many draws of a small Dirichlet.
        let mut mean = [0.0; 4];
        let draws = 4000;
        for seed in 0..draws {
            let d = dirichlet(4, 1.0, seed).unwrap();
            for (m, v) in mean.iter_mut().zip(&d) {
                *m += v / draws as f64;
            }
        }
        for m in mean {
            // sd of each coordinate is sqrt(3/80) ~ 0.19; standard error ~ 0.003.
            assert!((m - 0.25).abs() < 0.015, "{m}");
        }
    }
}
