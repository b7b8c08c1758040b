//! Keyed draws for speculative decoding: Gumbel-max samples and uniforms from
//! Philox, one stream per purpose so that no two draws share noise unless the
//! rule says so, and the shaping (temperature, top-k, top-p) applied
//! identically to the target's and the drafter's logits.

use serde::{Deserialize, Serialize};
use wb_kernels::philox;
use wb_kernels::sample::{noise, sample_rows, GumbelSampler};

use crate::model::sample::{sampler, STREAM_SAMPLE};

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

    /// `logits / T` with filtered-out tokens at −∞ (T > 0). Top-k keeps every
    /// token whose logit is at least the k-th largest (ties at the edge all
    /// kept, the `gumbel_sample` kernel's rule); top-p then keeps the most
    /// likely of those until their mass reaches `top_p`, ties broken by the
    /// lower token id. The set is a function of the logits alone.
    pub fn scores(&self, logits: &[f32]) -> Vec<f64> {
        let t = self.temperature;
        let mut s: Vec<f64> = logits.iter().map(|&l| l as f64 / t).collect();
        if let Some(kept) = self.kept(logits) {
            for (v, keep) in s.iter_mut().zip(kept) {
                if !keep {
                    *v = f64::NEG_INFINITY;
                }
            }
        }
        s
    }

    /// Which tokens the filters keep (None: no filter, all of them).
    fn kept(&self, logits: &[f32]) -> Option<Vec<bool>> {
        if !self.filters() {
            return None;
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let mut keep = logits.len();
        if self.top_k > 0 && self.top_k < logits.len() {
            let threshold = logits[order[self.top_k - 1]];
            keep = order
                .iter()
                .take_while(|&&i| logits[i] >= threshold)
                .count();
        }
        if self.top_p < 1.0 {
            let max = logits[order[0]] as f64;
            let w: Vec<f64> = order[..keep]
                .iter()
                .map(|&i| ((logits[i] as f64 - max) / self.temperature).exp())
                .collect();
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
        let mut kept = vec![false; logits.len()];
        for &i in &order[..keep] {
            kept[i] = true;
        }
        Some(kept)
    }

    /// Whether draws are the plain argmax: T = 0, or T so small that 1/T
    /// overflows f32 (the shaped distribution is then one-hot in f64 too).
    fn greedy(&self) -> bool {
        self.temperature == 0.0 || !((1.0 / self.temperature) as f32).is_finite()
    }

    /// The shaped distribution (one-hot argmax at T = 0).
    pub fn distribution(&self, logits: &[f32]) -> Vec<f64> {
        if self.greedy() {
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

    /// `argmax(logits / T + G)` over the kept tokens, G keyed by (seed,
    /// position, token, stream): a sample of the shaped distribution; the
    /// argmax at T = 0. Drawn by the `gumbel_sample` kernel (its top-k, or the
    /// filtered tokens set to −∞ when top-p is on), so the token is the one
    /// [`crate::model::sample::gumbel_sample`] and every backend draw.
    pub fn sample(&self, logits: &[f32], seed: u64, position: u64, stream: u32) -> u32 {
        if self.greedy() {
            return argmax(logits.iter().map(|&l| l as f64)) as u32;
        }
        let mut sampler = sampler(seed, stream, self.temperature);
        let row = if self.top_p < 1.0 {
            let kept = self.kept(logits).expect("a filter is on");
            logits
                .iter()
                .zip(kept)
                .map(|(&l, k)| if k { l } else { f32::NEG_INFINITY })
                .collect()
        } else {
            sampler.top_k = (self.top_k > 0).then_some(self.top_k);
            logits.to_vec()
        };
        kernel_draw(&sampler, row, position)
    }

    /// The `count` largest scores in decreasing order: a sample without
    /// replacement of `count` distinct tokens (Gumbel-top-k). Scores are the
    /// kernel's (`fma(logit, 1/T, G)` in f32, ties to the lower id), so the
    /// first is [`sample`](Self::sample). At T = 0 the `count` largest logits.
    pub fn ranked(
        &self,
        logits: &[f32],
        seed: u64,
        position: u64,
        stream: u32,
        count: usize,
    ) -> Vec<u32> {
        if self.greedy() {
            return top(&logits.iter().map(|&l| l as f64).collect::<Vec<_>>(), count);
        }
        let inv_t = sampler(seed, stream, self.temperature).inv_temperature();
        let kept = self.kept(logits);
        let mut perturbed = Vec::with_capacity(logits.len());
        // One Philox block holds the bits of four consecutive tokens.
        for (quad, group) in logits.chunks(4).enumerate() {
            let block = philox::block(seed, position, quad as u32, stream);
            for (lane, &l) in group.iter().enumerate() {
                let token = 4 * quad + lane;
                perturbed.push(if kept.as_ref().is_some_and(|k| !k[token]) {
                    f64::NEG_INFINITY
                } else {
                    noise::score(l, inv_t, block[lane]) as f64
                });
            }
        }
        top(&perturbed, count)
    }
}

/// The kernel's draw from one row at `position`: the CPU path of the
/// `gumbel_sample` op, called on the row directly (the loop holds logits as
/// host vectors; a tensor round trip per token would only add overhead).
fn kernel_draw(sampler: &GumbelSampler, row: Vec<f32>, position: u64) -> u32 {
    // Shapes and the temperature were checked by the callers; a row always
    // has a finite candidate (the kept set is never empty).
    debug_assert!(sampler.check(&[1, row.len()], &[position]).is_ok());
    sample_rows(sampler, &row, row.len(), &[position])[0].0
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

/// A sample of the distribution proportional to `weights` (non-negative, not
/// all zero): the `gumbel_sample` kernel's draw from their logarithms in f32.
pub fn sample_weights(weights: &[f64], seed: u64, position: u64, stream: u32) -> u32 {
    let logits: Vec<f32> = weights
        .iter()
        .map(|&w| {
            if w > 0.0 {
                // Clamped so that a tiny positive weight stays a candidate.
                (w.ln() as f32).max(f32::MIN)
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    kernel_draw(&sampler(seed, stream, 1.0), logits, position)
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
        // Token 1 and both of the pair tied at the edge (3 and 4) survive.
        assert!(p[1] > 0.0 && p[3] > 0.0 && p[4] == p[3] && p[0] == 0.0 && p[2] == 0.0);
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
            assert!(x == 1 || x == 3 || x == 4, "{x}");
        }
    }

    #[test]
    fn ranked_draws_are_distinct_and_start_with_the_sample() {
        // Quantised logits, so that ties at the top-k edge occur.
        let logits: Vec<f32> = (0..50)
            .map(|i| ((i as f32 * 0.37).sin() * 8.0).round() / 4.0)
            .collect();
        let shapings = [
            Shaping::temperature(0.8),
            Shaping {
                temperature: 1.3,
                top_k: 7,
                top_p: 1.0,
            },
            Shaping {
                temperature: 0.6,
                top_k: 0,
                top_p: 0.7,
            },
            Shaping {
                temperature: 1.0,
                top_k: 12,
                top_p: 0.9,
            },
        ];
        for s in shapings {
            let p = s.distribution(&logits);
            for position in 0..50 {
                // `sample` is the kernel's draw (its own top-k, or masked logits
                // under top-p); `ranked` scores every token on the host.
                let r = s.ranked(&logits, 4, position, STREAM_TARGET, 4);
                assert_eq!(r[0], s.sample(&logits, 4, position, STREAM_TARGET), "{s:?}");
                assert!(p[r[0] as usize] > 0.0);
                let mut d = r.clone();
                d.sort();
                d.dedup();
                assert_eq!(d.len(), 4);
            }
        }
    }

    #[test]
    fn weighted_draws_follow_the_weights() {
        // 20 000 keyed draws from weights (1, 0, 2, 5): frequencies within
        // 4.5 standard errors of 1/8, 0, 2/8, 5/8.
        let weights = [1.0, 0.0, 2.0, 5.0];
        let trials = 20_000;
        let mut counts = [0usize; 4];
        for position in 0..trials {
            counts[sample_weights(&weights, 3, position, STREAM_RESIDUAL) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, w) in counts.iter().zip(weights) {
            let p = w / 8.0;
            let se = (p * (1.0 - p) / trials as f64).sqrt();
            let f = *c as f64 / trials as f64;
            assert!((f - p).abs() <= 4.5 * se + 1e-12, "{counts:?}");
        }
    }
}
