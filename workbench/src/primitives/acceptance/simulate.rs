//! Monte-Carlo simulation of acceptance rules with counter-based randomness.
//!
//! Trial `t` of a run with seed `s` draws every random number from Philox keyed by
//! `(s, position = t, token, stream)`, so a trial's outcome is a pure function of
//! `(s, t)`: the same whatever the thread count or chunking, and shared by every
//! rule run with the same seed (common random numbers make rule comparisons
//! sharper). Counts are integers, so merging chunks in any order is exact.

use rayon::prelude::*;
use wb_kernels::philox;

use super::exact::{specinfer_chain, typical_threshold};
use super::Rule;
use crate::primitives::alias::AliasTable;
use crate::primitives::distribution::argmax;

/// Trials computed together by [`Simulator::trials`].
pub const LANES: usize = 8;

/// Stream of draft k's block: lanes 0-1 draw the token, lane 2 the accept coin.
pub const STREAM_DRAFT: u32 = 0x0001_0000;
/// Stream of the target's independent sample (naive and typical rules).
pub const STREAM_TARGET: u32 = 0x0002_0000;
/// Stream of the residual sample after the k-th rejection.
pub const STREAM_RESIDUAL: u32 = 0x0003_0000;
/// Stream of the Gumbel noise, one value per vocabulary token, shared by drafter
/// and target.
pub const STREAM_GUMBEL: u32 = 0x0004_0000;

/// Shrinks the bound 1 - u <= -ln(u) by far more than the logarithm's rounding
/// error, so that skipping on the bound never changes a result.
const LOWER_BOUND_SLACK: f64 = 1.0 - 1e-12;

/// One rule prepared for one (p, q) pair: tables built once, trials many times.
#[derive(Clone, Debug)]
pub struct Simulator {
    rule: Rule,
    drafts: usize,
    p: Vec<f64>,
    q_table: AliasTable,
    p_table: AliasTable,
    /// Residual distributions p_2..p_{K+1} of the rejection rules.
    residual_tables: Vec<AliasTable>,
    /// Per round k (SpecInfer's p_1..p_K, p_1 = p): the probability
    /// min(1, p_k(x) / q(x)) of accepting draft token x. One array read per test.
    round_ratios: Vec<Vec<f64>>,
    inv_p: Vec<f64>,
    inv_q: Vec<f64>,
    typical_threshold: f64,
    argmax_p: u32,
    argmax_q: u32,
}

/// What a run of trials observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Number of trials.
    pub trials: u64,
    /// Number of accepted trials.
    pub accepted: u64,
    /// Count of each emitted token.
    pub emitted: Vec<u64>,
    /// Bit t is set when trial t was accepted (empty unless requested).
    pub accept_bits: Vec<u64>,
}

impl Simulator {
    /// Prepares `rule` with `drafts` drafts for target `p` and draft `q` (both
    /// normalised, same length, already at the study's temperature).
    pub fn new(rule: Rule, drafts: usize, p: &[f64], q: &[f64]) -> Self {
        assert_eq!(p.len(), q.len(), "p and q must have the same vocabulary");
        assert!(drafts >= 1, "at least one draft");
        let rounds = match rule {
            Rule::Standard => 1,
            Rule::SpecInfer => drafts,
            _ => 0,
        };
        let (residuals, _) = specinfer_chain(p, q, rounds);
        let mut round_targets = vec![p.to_vec()];
        round_targets.extend(residuals.iter().take(rounds.saturating_sub(1)).cloned());
        let round_ratios = round_targets
            .iter()
            .map(|t| {
                t.iter()
                    .zip(q)
                    .map(|(&pk, &qx)| if qx > 0.0 { (pk / qx).min(1.0) } else { 0.0 })
                    .collect()
            })
            .collect();
        let residual_tables = residuals.iter().map(|r| AliasTable::new(r)).collect();
        let inverse = |v: &[f64]| v.iter().map(|x| 1.0 / x).collect::<Vec<_>>();
        let (epsilon, delta) = match rule {
            Rule::Typical { epsilon, delta } => (epsilon, delta),
            _ => (0.0, 0.0),
        };
        Simulator {
            rule,
            drafts,
            p: p.to_vec(),
            q_table: AliasTable::new(q),
            p_table: AliasTable::new(p),
            residual_tables,
            round_ratios,
            inv_p: inverse(p),
            inv_q: inverse(q),
            typical_threshold: typical_threshold(p, epsilon, delta),
            argmax_p: argmax(p) as u32,
            argmax_q: argmax(q) as u32,
        }
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.p.len()
    }

    /// One trial at `position`: whether the draft was accepted, and the emitted token.
    #[inline]
    pub fn trial(&self, seed: u64, position: u64) -> (bool, u32) {
        match self.rule {
            Rule::Naive => self.naive(seed, position),
            Rule::Standard | Rule::SpecInfer => self.rejection(seed, position),
            Rule::Gumbel if self.drafts == 1 => self.gumbel(seed, position),
            Rule::Gumbel => self.gumbel_top_k(seed, position),
            Rule::Greedy => (self.argmax_p == self.argmax_q, self.argmax_p),
            Rule::Typical { .. } => self.typical(seed, position),
        }
    }

    /// Trials at positions `position..position + LANES`, identical to calling
    /// [`trial`](Self::trial) on each: the Philox blocks of all lanes are computed
    /// together so that their multiplies overlap.
    #[inline]
    pub fn trials(&self, seed: u64, position: u64) -> [(bool, u32); LANES] {
        let mut out = [(false, 0u32); LANES];
        let word = |b: &[[u32; LANES]; 4], i: usize| b[0][i] as u64 | ((b[1][i] as u64) << 32);
        match self.rule {
            Rule::Standard | Rule::SpecInfer => {
                let last = self.round_ratios.len() - 1;
                let residual = philox::blocks_by_position::<LANES>(
                    seed,
                    position,
                    0,
                    STREAM_RESIDUAL + last as u32,
                );
                let mut done = [false; LANES];
                for (k, ratio) in self.round_ratios.iter().enumerate() {
                    let draft = philox::blocks_by_position::<LANES>(
                        seed,
                        position,
                        0,
                        STREAM_DRAFT + k as u32,
                    );
                    for i in 0..LANES {
                        if done[i] {
                            continue;
                        }
                        let x = self.q_table.sample(word(&draft, i)) as usize;
                        let u = philox::u01_open_open(draft[2][i]);
                        if u < ratio[x] {
                            out[i] = (true, x as u32);
                            done[i] = true;
                        }
                    }
                }
                for (i, o) in out.iter_mut().enumerate() {
                    if !done[i] {
                        *o = (false, self.residual_tables[last].sample(word(&residual, i)));
                    }
                }
            }
            Rule::Naive => {
                let target = philox::blocks_by_position::<LANES>(seed, position, 0, STREAM_TARGET);
                for (i, o) in out.iter_mut().enumerate() {
                    o.1 = self.p_table.sample(word(&target, i));
                }
                for k in 0..self.drafts {
                    let draft = philox::blocks_by_position::<LANES>(
                        seed,
                        position,
                        0,
                        STREAM_DRAFT + k as u32,
                    );
                    for (i, o) in out.iter_mut().enumerate() {
                        o.0 |= self.q_table.sample(word(&draft, i)) == o.1;
                    }
                }
            }
            Rule::Typical { .. } => {
                let draft = philox::blocks_by_position::<LANES>(seed, position, 0, STREAM_DRAFT);
                let target = philox::blocks_by_position::<LANES>(seed, position, 0, STREAM_TARGET);
                for (i, o) in out.iter_mut().enumerate() {
                    let x = self.q_table.sample(word(&draft, i));
                    *o = if self.p[x as usize] > self.typical_threshold {
                        (true, x)
                    } else {
                        (false, self.p_table.sample(word(&target, i)))
                    };
                }
            }
            Rule::Greedy | Rule::Gumbel => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.trial(seed, position + i as u64);
                }
            }
        }
        out
    }

    #[inline(always)]
    fn draft_block(seed: u64, position: u64, k: usize) -> [u32; 4] {
        philox::block(seed, position, 0, STREAM_DRAFT + k as u32)
    }

    #[inline(always)]
    fn word(block: [u32; 4]) -> u64 {
        block[0] as u64 | ((block[1] as u64) << 32)
    }

    fn target_sample(&self, seed: u64, position: u64) -> u32 {
        let block = philox::block(seed, position, 0, STREAM_TARGET);
        self.p_table.sample(Self::word(block))
    }

    fn naive(&self, seed: u64, position: u64) -> (bool, u32) {
        let y = self.target_sample(seed, position);
        let accepted = (0..self.drafts).any(|k| {
            self.q_table
                .sample(Self::word(Self::draft_block(seed, position, k)))
                == y
        });
        (accepted, y)
    }

    /// Standard speculative sampling (one round) and SpecInfer (K rounds).
    fn rejection(&self, seed: u64, position: u64) -> (bool, u32) {
        for (k, ratio) in self.round_ratios.iter().enumerate() {
            let block = Self::draft_block(seed, position, k);
            let x = self.q_table.sample(Self::word(block)) as usize;
            let u = philox::u01_open_open(block[2]);
            if u < ratio[x] {
                return (true, x as u32);
            }
        }
        let k = self.round_ratios.len() - 1;
        let block = philox::block(seed, position, 0, STREAM_RESIDUAL + k as u32);
        (false, self.residual_tables[k].sample(Self::word(block)))
    }

    /// Calls `f(token, bits)` for every token's noise at `position`, in
    /// increasing token order (ties go to the lowest token), 32 tokens per
    /// batch of Philox blocks.
    #[inline(always)]
    fn for_each_noise(&self, seed: u64, position: u64, mut f: impl FnMut(usize, u32)) {
        let vocab = self.p.len();
        let batches = vocab / 32;
        for batch in 0..batches {
            let b = philox::blocks_by_quad::<8>(seed, position, (batch * 8) as u32, STREAM_GUMBEL);
            for lane in 0..8 {
                for (w, word) in b.iter().enumerate() {
                    f(batch * 32 + lane * 4 + w, word[lane]);
                }
            }
        }
        for quad in batches * 8..vocab.div_ceil(4) {
            let block = philox::block(seed, position, quad as u32, STREAM_GUMBEL);
            for (lane, &bits) in block.iter().enumerate().take(vocab - quad * 4) {
                f(quad * 4 + lane, bits);
            }
        }
    }

    /// Gumbel-max with shared noise. argmax(log p + G) with G = -ln(-ln u) equals
    /// argmin(E / p) with E = -ln u, which costs one logarithm per token instead of two.
    fn gumbel(&self, seed: u64, position: u64) -> (bool, u32) {
        let (mut best_p, mut best_q) = (f64::INFINITY, f64::INFINITY);
        let (mut y, mut x) = (0usize, 0usize);
        self.for_each_noise(seed, position, |token, bits| {
            let u = philox::u01_open_open(bits);
            // -ln u >= 1 - u: a token whose lower bound cannot beat either
            // current best is skipped without its logarithm. The skip is exact:
            // the result is the same as evaluating every token.
            let floor = (1.0 - u) * LOWER_BOUND_SLACK;
            if floor * self.inv_p[token] >= best_p && floor * self.inv_q[token] >= best_q {
                return;
            }
            let e = -u.ln();
            let key_p = e * self.inv_p[token];
            let key_q = e * self.inv_q[token];
            if key_p < best_p {
                best_p = key_p;
                y = token;
            }
            if key_q < best_q {
                best_q = key_q;
                x = token;
            }
        });
        (x == y, y as u32)
    }

    /// Gumbel-top-K drafts: the K smallest E/q (K distinct tokens) against the
    /// target's argmin E/p under the same noise.
    fn gumbel_top_k(&self, seed: u64, position: u64) -> (bool, u32) {
        let k = self.drafts.min(self.p.len());
        let mut top: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
        let (mut best_p, mut y) = (f64::INFINITY, 0usize);
        self.for_each_noise(seed, position, |token, bits| {
            let u = philox::u01_open_open(bits);
            let worst_kept = if top.len() < k {
                f64::INFINITY
            } else {
                top[k - 1].0
            };
            let floor = (1.0 - u) * LOWER_BOUND_SLACK;
            if floor * self.inv_p[token] >= best_p && floor * self.inv_q[token] >= worst_kept {
                return;
            }
            let e = -u.ln();
            let key_p = e * self.inv_p[token];
            if key_p < best_p {
                best_p = key_p;
                y = token;
            }
            let key_q = e * self.inv_q[token];
            if top.len() < k || key_q < top[top.len() - 1].0 {
                // Keep `top` sorted ascending; equal keys keep the lower token first.
                let at = top.partition_point(|&(v, _)| v <= key_q);
                top.insert(at, (key_q, token));
                top.truncate(k);
            }
        });
        let accepted = top
            .iter()
            .any(|&(key, token)| token == y && key.is_finite());
        (accepted, y as u32)
    }

    fn typical(&self, seed: u64, position: u64) -> (bool, u32) {
        let x = self
            .q_table
            .sample(Self::word(Self::draft_block(seed, position, 0)));
        if self.p[x as usize] > self.typical_threshold {
            (true, x)
        } else {
            (false, self.target_sample(seed, position))
        }
    }

    /// Runs trials at positions `0..trials` in parallel chunks.
    pub fn run(&self, seed: u64, trials: u64, record_bits: bool) -> Outcome {
        // Chunks of roughly equal work; the chunking never changes the result.
        let work_per_trial = match self.rule {
            Rule::Gumbel => self.vocab() as u64,
            _ => 8,
        };
        let chunk = (1u64 << 18).div_ceil(work_per_trial).clamp(1, 1 << 16);
        let chunks = trials.div_ceil(chunk);
        let vocab = self.vocab();
        let words = if record_bits {
            trials.div_ceil(64) as usize
        } else {
            0
        };
        let empty = || Outcome {
            trials: 0,
            accepted: 0,
            emitted: vec![0; vocab],
            accept_bits: vec![0; words],
        };
        let mut outcome = (0..chunks)
            .into_par_iter()
            .fold(empty, |mut acc, c| {
                let end = ((c + 1) * chunk).min(trials);
                let mut record = |position: u64, (accepted, token): (bool, u32)| {
                    acc.emitted[token as usize] += 1;
                    if accepted {
                        acc.accepted += 1;
                        if record_bits {
                            acc.accept_bits[(position / 64) as usize] |= 1 << (position % 64);
                        }
                    }
                };
                let mut position = c * chunk;
                while position + LANES as u64 <= end {
                    for (i, result) in self.trials(seed, position).into_iter().enumerate() {
                        record(position + i as u64, result);
                    }
                    position += LANES as u64;
                }
                for position in position..end {
                    record(position, self.trial(seed, position));
                }
                acc.trials += end - c * chunk;
                acc
            })
            .reduce(empty, |mut a, b| {
                a.trials += b.trials;
                a.accepted += b.accepted;
                a.emitted
                    .iter_mut()
                    .zip(&b.emitted)
                    .for_each(|(x, y)| *x += y);
                a.accept_bits
                    .iter_mut()
                    .zip(&b.accept_bits)
                    .for_each(|(x, y)| *x |= y);
                a
            });
        outcome.trials = trials;
        outcome
    }
}

impl Outcome {
    /// Whether trial `t` was accepted (requires `record_bits`).
    pub fn accepted_at(&self, t: u64) -> bool {
        self.accept_bits[(t / 64) as usize] >> (t % 64) & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_are_pure_functions_of_seed_and_position() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let q = [0.4, 0.3, 0.2, 0.1];
        for rule in [Rule::Naive, Rule::Standard, Rule::Gumbel] {
            let sim = Simulator::new(rule, 1, &p, &q);
            let a = sim.run(7, 10_000, true);
            let b = sim.run(7, 10_000, true);
            assert_eq!(a, b);
            let by_hand: u64 = (0..10_000).filter(|&t| sim.trial(7, t).0).count() as u64;
            assert_eq!(a.accepted, by_hand);
            assert_ne!(a, sim.run(8, 10_000, true));
        }
    }

    /// The canonical definition: argmax(log p + G), G = -ln(-ln u), every token.
    fn gumbel_max(p: &[f64], seed: u64, position: u64) -> usize {
        let score = |t: usize| p[t].ln() + philox::gumbel(seed, position, t as u32, STREAM_GUMBEL);
        (0..p.len()).fold(0, |best, t| if score(t) > score(best) { t } else { best })
    }

    #[test]
    fn fast_gumbel_matches_the_canonical_gumbel_max() {
        let p = crate::primitives::families::dirichlet(300, 0.5, 4).unwrap();
        let q = crate::primitives::families::perturbed(&p, 1.0, 5);
        let sim = Simulator::new(Rule::Gumbel, 1, &p, &q);
        for t in 0..3000 {
            let (accepted, y) = sim.trial(11, t);
            assert_eq!(y as usize, gumbel_max(&p, 11, t));
            assert_eq!(accepted, gumbel_max(&q, 11, t) == y as usize);
        }
        let top3 = Simulator::new(Rule::Gumbel, 3, &p, &q);
        for t in 0..1000 {
            let (_, y) = top3.trial(11, t);
            assert_eq!(y as usize, gumbel_max(&p, 11, t));
        }
    }

    #[test]
    fn batched_trials_equal_single_trials() {
        let p = crate::primitives::families::dirichlet(50, 0.5, 1).unwrap();
        let q = crate::primitives::families::perturbed(&p, 1.0, 2);
        let rules = [
            (Rule::Naive, 1),
            (Rule::Naive, 3),
            (Rule::Standard, 1),
            (Rule::SpecInfer, 3),
            (
                Rule::Typical {
                    epsilon: 0.09,
                    delta: 0.3,
                },
                1,
            ),
            (Rule::Greedy, 1),
            (Rule::Gumbel, 1),
        ];
        for (rule, k) in rules {
            let sim = Simulator::new(rule, k, &p, &q);
            for start in [0u64, 8, (1 << 32) - 4] {
                let batch = sim.trials(5, start);
                for (i, result) in batch.iter().enumerate() {
                    assert_eq!(*result, sim.trial(5, start + i as u64), "{rule:?} K={k}");
                }
            }
        }
    }

    #[test]
    fn gumbel_top_k_with_one_draft_matches_gumbel() {
        let p = [0.05, 0.25, 0.3, 0.4, 0.0];
        let q = [0.3, 0.3, 0.2, 0.1, 0.1];
        let one = Simulator::new(Rule::Gumbel, 1, &p, &q);
        for t in 0..2000 {
            assert_eq!(one.gumbel(3, t), one.gumbel_top_k(3, t));
        }
    }
}
