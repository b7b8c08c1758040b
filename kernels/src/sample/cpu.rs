//! The CPU sampler: rows and chunks of each row over rayon's threads (the
//! winner does not depend on how the work is split, see [`super::noise::better`]),
//! Philox blocks eight at a time.

use rayon::prelude::*;

use super::{noise, GumbelSampler};
use crate::{elem::Elem, philox};

/// Tokens per task within a row (a multiple of 32, so chunks start on a
/// boundary of eight Philox blocks).
const CHUNK: usize = 1 << 13;

/// The winner (token, score) of each row of `logits` (`positions.len()` rows
/// of `vocab`); arguments as checked by [`GumbelSampler::check`].
pub fn sample_rows<T: Elem>(
    s: &GumbelSampler,
    logits: &[T],
    vocab: usize,
    positions: &[u64],
) -> Vec<(u32, f32)> {
    let inv_t = s.inv_temperature();
    logits
        .par_chunks(vocab)
        .zip(positions.par_iter())
        .map(|(row, &position)| {
            let threshold = s.top_k.and_then(|k| top_k_threshold(row, k));
            row.par_chunks(CHUNK)
                .enumerate()
                .map(|(c, chunk)| {
                    best_in_chunk_fast(s, chunk, c * CHUNK, position, inv_t, threshold)
                })
                .reduce(|| NONE, pick)
        })
        .collect()
}

/// The result for a row without candidates.
const NONE: (u32, f32) = (u32::MAX, f32::NAN);

/// The better of two candidates.
#[inline(always)]
fn pick(a: (u32, f32), b: (u32, f32)) -> (u32, f32) {
    if noise::better(b.1, b.0, a.1, a.0) {
        b
    } else {
        a
    }
}

/// The k-th largest non-NaN logit, or None when there are at most k (all are
/// kept). Order: f32::total_cmp, so the threshold's bits are what a radix
/// select on the GPU finds; membership is then `logit >= threshold`.
pub(crate) fn top_k_threshold<T: Elem>(row: &[T], k: usize) -> Option<f32> {
    let mut values: Vec<f32> = row
        .iter()
        .map(|v| v.to_f32())
        .filter(|v| !v.is_nan())
        .collect();
    if k >= values.len() {
        return None;
    }
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    Some(*kth)
}

/// Whether a logit passes the top-k threshold (NaN never does).
#[inline(always)]
fn kept(logit: f32, threshold: Option<f32>) -> bool {
    match threshold {
        None => true,
        Some(t) => logit >= t,
    }
}

/// [`best_in_chunk`] compiled with FMA where the CPU has it: the noise is
/// mostly fused multiply–adds (`f32::mul_add`), which without the target
/// feature are calls to libm's software `fmaf`. Same results either way
/// (both round once).
fn best_in_chunk_fast<T: Elem>(
    s: &GumbelSampler,
    chunk: &[T],
    start: usize,
    position: u64,
    inv_t: f32,
    threshold: Option<f32>,
) -> (u32, f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA (checked just above).
        return unsafe { best_in_chunk_fma(s, chunk, start, position, inv_t, threshold) };
    }
    best_in_chunk(s, chunk, start, position, inv_t, threshold)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn best_in_chunk_fma<T: Elem>(
    s: &GumbelSampler,
    chunk: &[T],
    start: usize,
    position: u64,
    inv_t: f32,
    threshold: Option<f32>,
) -> (u32, f32) {
    best_in_chunk(s, chunk, start, position, inv_t, threshold)
}

#[inline(always)]
fn best_in_chunk<T: Elem>(
    s: &GumbelSampler,
    chunk: &[T],
    start: usize,
    position: u64,
    inv_t: f32,
    threshold: Option<f32>,
) -> (u32, f32) {
    let mut best = NONE;
    for (i, group) in chunk.chunks(32).enumerate() {
        let first = start + 32 * i;
        let blocks = philox::blocks_by_quad::<8>(s.seed, position, (first / 4) as u32, s.stream);
        // The noise of all 32 tokens at once (branch-free, vectorised).
        // (A plain loop, not a closure: closures are compiled without the
        // caller's FMA feature.)
        let mut g = [0f32; 32];
        for (j, gj) in g.iter_mut().enumerate() {
            *gj = noise::gumbel_f32_select(blocks[j % 4][j / 4]);
        }
        for (j, v) in group.iter().enumerate() {
            let logit = v.to_f32();
            if !kept(logit, threshold) {
                continue;
            }
            let score = logit.mul_add(inv_t, g[j]);
            let token = (first + j) as u32;
            if noise::better(score, token, best.1, best.0) {
                best = (token, score);
            }
        }
    }
    best
}

/// The plain reference for one row: token by token with
/// [`philox::bits`], top-k by a full sort.
pub fn reference_row(s: &GumbelSampler, row: &[f32], position: u64) -> (u32, f32) {
    let threshold = s.top_k.and_then(|k| {
        let mut v: Vec<f32> = row.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(|a, b| b.total_cmp(a));
        v.get(k - 1).copied().filter(|_| k < v.len())
    });
    let inv_t = s.inv_temperature();
    let mut best = NONE;
    for (token, &logit) in row.iter().enumerate() {
        if !kept(logit, threshold) {
            continue;
        }
        let bits = philox::bits(s.seed, position, token as u32, s.stream);
        let score = noise::score(logit, inv_t, bits);
        if noise::better(score, token as u32, best.1, best.0) {
            best = (token as u32, score);
        }
    }
    best
}
