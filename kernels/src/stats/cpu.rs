//! The CPU kernel and the plain reference.

use rayon::prelude::*;

use super::{ChannelMoments, FIELDS};
use crate::elem::Elem;

/// Channels per task: the accumulators of one task (6 × 4 bytes each) stay
/// in L1 while its rows stream by.
const CHANNEL_TILE: usize = 512;

/// Partials `[blocks, channels, FIELDS]` of the row-major `x` into `out`.
pub(crate) fn partials<T: Elem>(
    x: &[T],
    rows: usize,
    channels: usize,
    block_rows: usize,
    out: &mut [f32],
) {
    let tiles = channels.div_ceil(CHANNEL_TILE);
    // One task per (block, channel tile); each writes its own part of `out`.
    let tasks: Vec<(usize, usize)> = (0..rows.div_ceil(block_rows))
        .flat_map(|b| (0..tiles).map(move |t| (b, t)))
        .collect();
    let results: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(b, t)| {
            let (r0, r1) = (b * block_rows, ((b + 1) * block_rows).min(rows));
            let (c0, c1) = (t * CHANNEL_TILE, ((t + 1) * CHANNEL_TILE).min(channels));
            block_tile(x, channels, r0..r1, c0..c1)
        })
        .collect();
    for (&(b, t), res) in tasks.iter().zip(results) {
        let c0 = t * CHANNEL_TILE;
        let at = (b * channels + c0) * FIELDS;
        out[at..at + res.len()].copy_from_slice(&res);
    }
}

/// Pébay's one-value update of (count, mean, M2, M3, M4, absmax) in f32,
/// in the order the GPU kernels use; NaN leaves the state unchanged.
///
/// Written without a branch (a NaN contributes delta = 0 and no count, which
/// adds exact zeros), so the loop over channels vectorises.
#[inline(always)]
pub(crate) fn update(s: &mut [f32; FIELDS], x: f32) {
    let [count, mean, m2, m3, m4, absmax] = *s;
    let ok = !x.is_nan();
    let x = if ok { x } else { mean };
    let n1 = count;
    let n = if ok { count + 1.0 } else { count.max(1.0) };
    let delta = x - mean;
    let dn = delta / n;
    let dn2 = dn * dn;
    let t1 = delta * dn * n1;
    s[4] = m4 + t1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * m2 - 4.0 * dn * m3;
    s[3] = m3 + t1 * dn * (n - 2.0) - 3.0 * dn * m2;
    s[2] = m2 + t1;
    s[1] = mean + dn;
    s[0] = if ok { n } else { count };
    s[5] = absmax.max(x.abs());
}

fn block_tile<T: Elem>(
    x: &[T],
    channels: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Vec<f32> {
    // Structure of arrays, so the update vectorises across channels.
    let w = cols.len();
    let (mut count, mut mean, mut m2) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
    let (mut m3, mut m4, mut absmax) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
    {
        // Equal lengths, stated once, let the compiler drop the bounds checks.
        let (count, mean, m2) = (&mut count[..w], &mut mean[..w], &mut m2[..w]);
        let (m3, m4, absmax) = (&mut m3[..w], &mut m4[..w], &mut absmax[..w]);
        for r in rows {
            let row = &x[r * channels + cols.start..r * channels + cols.start + w];
            for c in 0..w {
                let mut s = [count[c], mean[c], m2[c], m3[c], m4[c], absmax[c]];
                update(&mut s, row[c].to_f32());
                [count[c], mean[c], m2[c], m3[c], m4[c], absmax[c]] = s;
            }
        }
    }
    (0..w)
        .flat_map(|c| [count[c], mean[c], m2[c], m3[c], m4[c], absmax[c]])
        .collect()
}

/// The plain reference: two passes in f64 over each channel of `x`
/// (`[rows, channels]`, f32), NaN skipped.
pub fn reference(x: &[f32], rows: usize, channels: usize) -> Vec<ChannelMoments> {
    (0..channels)
        .map(|c| {
            let v: Vec<f64> = (0..rows)
                .map(|r| f64::from(x[r * channels + c]))
                .filter(|v| !v.is_nan())
                .collect();
            let count = v.len() as f64;
            if v.is_empty() {
                return ChannelMoments::default();
            }
            let mean = v.iter().sum::<f64>() / count;
            let p = |k: i32| v.iter().map(|x| (x - mean).powi(k)).sum::<f64>();
            ChannelMoments {
                count,
                mean,
                m2: p(2),
                m3: p(3),
                m4: p(4),
                absmax: v.iter().fold(0.0, |a: f64, x| a.max(x.abs())),
            }
        })
        .collect()
}
