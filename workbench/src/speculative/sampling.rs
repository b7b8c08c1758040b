//! Keyed draws for speculative decoding: Gumbel-max samples and uniforms from
//! Philox, one stream per purpose so that no two draws share noise unless the
//! rule says so, and the shaping (temperature, top-k, top-p) applied
//! identically to the target's and the drafter's logits.

use serde::{Deserialize, Serialize};
use wb_kernels::philox;

use crate::model::sample::STREAM_SAMPLE;

/// The target's own sample at a position (shared with plain decoding and with
/// the drafter under the `gumbel` rule).
pub const STREAM_TARGET: u32 = STREAM_SAMPLE;
/// The drafter's independent samples (`standard`, `naive`, `typical`; branch k
/// of a tree uses `STREAM_DRAFT + 16 k`).
pub const STREAM_DRAFT: u32 = 0x0005_0001;
/// The uniform of the standard rule's accept test (SpecInfer's k-th test: `+ 16 k`).
pub const STREAM_ACCEPT: u32 = 0x0005_0002;
/// The standard rule's residual sample after a rejection.
pub const STREAM_RESIDUAL: u32 = 0x0005_0003;

/// The stream of branch `k`'s independent draft samples.
pub fn draft_stream(branch: usize) -> u32 {
    STREAM_DRAFT + 16 * branch as u32
}

/// How logits become a sampling distribution: `softmax(logits / T)` restricted
/// to the `top_k` most likely tokens and then to the smallest set of most
/// likely tokens whose mass reaches `top_p`, renormalised. The same shaping is
/// applied to p and to q, so every rule's guarantee holds for the shaped
/// target distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shaping {
    /// Sampling temperature (0 = argmax).
    pub temperature: f64,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest most-likely set of mass >= top_p (1 = all).
    pub top_p: f64,
}

impl Shaping {
    /// Temperature only, no filtering.
    pub fn temperature(temperature: f64) -> Self {
        Shaping {
            temperature,
            top_k: 0,
            top_p: 1.0,
        }
    }

    /// Whether a filter is on.
    pub fn filters(&self) -> bool {
        self.top_k > 0 || self.top_p < 1.0
    }

    /// `logits / T` with filtered-out tokens at −∞ (T > 0). Ties at the edge
    /// of the top-k or top-p set are broken by the lower token id, so the set
    /// is a function of the logits alone.
    pub fn scores(&self, logits: &[f32]) -> Vec<f64> {
        let t = self.temperature;
        let mut s: Vec<f64> = logits.iter().map(|&l| l as f64 / t).collect();
        if !self.filters() {
            return s;
        }
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        let mut keep = if self.top_k > 0 {
            self.top_k.min(s.len())
        } else {
            s.len()
        };
        if self.top_p < 1.0 {
            let max = s[order[0]];
            let w: Vec<f64> = order[..keep].iter().map(|&i| (s[i] - max).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut mass = 0.0;
            for (n, wi) in w.iter().enumerate() {
                mass += wi / total;
                if mass >= self.top_p {
                    keep = n + 1;
                    break;
                }
            }
        }
        for &i in &order[keep..] {
            s[i] = f64::NEG_INFINITY;
        }
        s
    }

    /// The shaped distribution (one-hot argmax at T = 0).
    pub fn distribution(&self, logits: &[f32]) -> Vec<f64> {
        if self.temperature == 0.0 {
            let best = argmax(logits.iter().map(|&l| l as f64));
            let mut p = vec![0.0; logits.len()];
            p[best] = 1.0;
            return p;
        }
        let s = self.scores(logits);
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|&v| (v - max).exp()).collect();
        let total: f64 = e.iter().sum();
        e.into_iter().map(|v| v / total).collect()
    }

    /// `argmax(scores + G)` with G keyed by (seed, position, token, stream): a
    /// sample of the shaped distribution; the argmax at T = 0. Unfiltered, the
    /// same formula as [`crate::model::sample::gumbel_sample`].
    pub fn sample(&self, logits: &[f32], seed: u64, position: u64, stream: u32) -> u32 {
        self.ranked(logits, seed, position, stream, 1)[0]
    }

    /// The `count` largest of `scores + G` in decreasing order: a sample
    /// without replacement of `count` distinct tokens (Gumbel-top-k); the first
    /// is [`sample`](Self::sample). At T = 0 the `count` largest logits.
    pub fn ranked(
        &self,
        logits: &[f32],
        seed: u64,
        position: u64,
        stream: u32,
        count: usize,
    ) -> Vec<u32> {
        let perturbed: Vec<f64> = if self.temperature == 0.0 {
            logits.iter().map(|&l| l as f64).collect()
        } else {
            self.scores(logits)
                .iter()
                .enumerate()
                .map(|(token, &s)| {
                    if s == f64::NEG_INFINITY {
                        s
                    } else {
                        s + philox::gumbel(seed, position, token as u32, stream)
                    }
                })
                .collect()
        };
        top(&perturbed, count)
    }
}

/// Indices of the `count` largest values, largest first, lowest index on ties.
fn top(values: &[f64], count: usize) -> Vec<u32> {
    if count == 1 {
        return vec![argmax(values.iter().cloned()) as u32];
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(count);
    order.into_iter().map(|i| i as u32).collect()
}

/// Softmax of `logits / temperature` in f64 (one-hot argmax at T = 0).
pub fn distribution(logits: &[f32], temperature: f64) -> Vec<f64> {
    Shaping::temperature(temperature).distribution(logits)
}

/// Index of the largest value, lowest index on ties.
pub fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (f64::NEG_INFINITY, 0);
    for (i, v) in values.enumerate() {
        if v > best.0 {
            best = (v, i);
        }
    }
    best.1
}

/// `argmax(logits / T + G)` with G keyed by (seed, position, token, stream).
pub fn gumbel_max(logits: &[f32], temperature: f64, seed: u64, position: u64, stream: u32) -> u32 {
    Shaping::temperature(temperature).sample(logits, seed, position, stream)
}

/// A sample of the distribution proportional to `weights` (non-negative), by
/// Gumbel-max on their logarithms.
pub fn sample_weights(weights: &[f64], seed: u64, position: u64, stream: u32) -> u32 {
    argmax(weights.iter().enumerate().map(|(token, &w)| {
        if w > 0.0 {
            w.ln() + philox::gumbel(seed, position, token as u32, stream)
        } else {
            f64::NEG_INFINITY
        }
    })) as u32
}

/// A uniform in (0, 1) keyed by (seed, position, stream).
pub fn uniform(seed: u64, position: u64, stream: u32) -> f64 {
    philox::uniform(seed, position, 0, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_the_most_likely_tokens() {
        let logits = [0.0f32, 3.0, 1.0, 2.0, 2.0];
        let k2 = Shaping {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        };
        let p = k2.distribution(&logits);
        // Token 1 and the lower-id of the tied pair (3) survive.
        assert!(p[1] > 0.0 && p[3] > 0.0 && p[4] == 0.0 && p[0] == 0.0 && p[2] == 0.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let full = distribution(&logits, 1.0);
        let p50 = Shaping {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.6,
        }
        .distribution(&logits);
        // The top token alone holds 0.52: the set grows to reach 0.6.
        assert!(full[1] < 0.6 && full[1] + full[3] >= 0.6);
        assert_eq!(p50.iter().filter(|&&v| v > 0.0).count(), 2);
        // Filtered draws never leave the kept set.
        for position in 0..200 {
            let x = k2.sample(&logits, 9, position, STREAM_TARGET);
            assert!(x == 1 || x == 3, "{x}");
        }
    }

    #[test]
    fn ranked_draws_are_distinct_and_start_with_the_sample() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let s = Shaping::temperature(0.8);
        for position in 0..50 {
            let r = s.ranked(&logits, 4, position, STREAM_TARGET, 4);
            assert_eq!(r[0], s.sample(&logits, 4, position, STREAM_TARGET));
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 4);
        }
    }
}
