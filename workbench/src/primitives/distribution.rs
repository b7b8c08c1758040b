//! Categorical distributions over a vocabulary, and what acceptance rules need of
//! them: temperature, total variation, argmax, entropy.

/// Tolerance on `sum(p) == 1` for vectors given by the user.
pub const SUM_TOLERANCE: f64 = 1e-6;

/// Why a vector is not a probability distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum InvalidDistribution {
    /// The vector is empty.
    Empty,
    /// An entry is negative or not finite.
    BadEntry {
        /// Index of the entry.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The entries do not sum to one within [`SUM_TOLERANCE`].
    BadSum {
        /// The sum found.
        sum: f64,
    },
}

impl std::fmt::Display for InvalidDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidDistribution::Empty => write!(f, "expected a non-empty probability vector"),
            InvalidDistribution::BadEntry { index, value } => write!(
                f,
                "entry {index} is {value}; expected finite probabilities >= 0"
            ),
            InvalidDistribution::BadSum { sum } => write!(
                f,
                "entries sum to {sum}; expected a sum of 1 within {SUM_TOLERANCE:e}"
            ),
        }
    }
}

/// Checks that `p` is a probability vector: non-empty, finite, non-negative and
/// summing to one within [`SUM_TOLERANCE`].
pub fn check_probabilities(p: &[f64]) -> Result<(), InvalidDistribution> {
    if p.is_empty() {
        return Err(InvalidDistribution::Empty);
    }
    if let Some((index, &value)) = p
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return Err(InvalidDistribution::BadEntry { index, value });
    }
    let sum: f64 = p.iter().sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(InvalidDistribution::BadSum { sum });
    }
    Ok(())
}

/// `p / sum(p)`; the caller guarantees a positive sum.
pub fn normalized(p: &[f64]) -> Vec<f64> {
    let sum: f64 = p.iter().sum();
    p.iter().map(|v| v / sum).collect()
}

/// Index of the largest entry; ties go to the lowest index.
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

/// The distribution `softmax(log p / T)`; `T = 0` gives the one-hot at
/// [`argmax`], the greedy limit. Zero entries stay zero.
pub fn with_temperature(p: &[f64], temperature: f64) -> Vec<f64> {
    if temperature == 0.0 {
        let mut one_hot = vec![0.0; p.len()];
        one_hot[argmax(p)] = 1.0;
        return one_hot;
    }
    if temperature == 1.0 {
        return normalized(p);
    }
    // Work in log space relative to the largest entry so that small temperatures
    // do not underflow every entry.
    let max_log = p[argmax(p)].ln();
    let scaled: Vec<f64> = p
        .iter()
        .map(|&v| {
            if v > 0.0 {
                ((v.ln() - max_log) / temperature).exp()
            } else {
                0.0
            }
        })
        .collect();
    normalized(&scaled)
}

/// Total variation distance `0.5 * sum |p - q|`.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Shannon entropy in nats.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&v| v > 0.0)
        .map(|&v| v * v.ln())
        .sum::<f64>()
}

/// `softmax(logits)`, computed stably.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    normalized(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_reject_bad_vectors() {
        assert_eq!(check_probabilities(&[]), Err(InvalidDistribution::Empty));
        assert!(matches!(
            check_probabilities(&[0.5, -0.1, 0.6]),
            Err(InvalidDistribution::BadEntry { index: 1, .. })
        ));
        assert!(matches!(
            check_probabilities(&[0.5, 0.4]),
            Err(InvalidDistribution::BadSum { .. })
        ));
        assert!(check_probabilities(&[0.5, 0.5 + 5e-7]).is_ok());
    }

    #[test]
    fn temperature_limits() {
        let p = [0.1, 0.6, 0.3];
        assert_eq!(with_temperature(&p, 0.0), vec![0.0, 1.0, 0.0]);
        let t1 = with_temperature(&p, 1.0);
        assert!(total_variation(&t1, &p) < 1e-15);
        let cold = with_temperature(&p, 0.01);
        assert!(cold[1] > 1.0 - 1e-12);
        let hot = with_temperature(&p, 1e6);
        assert!(hot.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-5));
        // p^(1/T) normalised, checked directly.
        let t2 = with_temperature(&p, 2.0);
        let direct = normalized(&p.map(|v: f64| v.sqrt()));
        assert!(total_variation(&t2, &direct) < 1e-15);
    }

    #[test]
    fn total_variation_and_entropy() {
        assert_eq!(total_variation(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-12);
    }
}
