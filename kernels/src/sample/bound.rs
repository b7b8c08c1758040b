//! Bounds on the Gumbel noise per bucket of Philox bits, for the CUDA
//! sampler's coarse filters (`src/cuda/gumbel_sample.cu`).
//!
//! [`noise::gumbel_f32`] is increasing in the 32 bits x (u = (x + 0.5)·2^−32
//! grows with x, −ln u shrinks, −ln(−ln u) grows; the f32 steps round
//! monotonically up to ulp-sized wobbles), so over a bucket (a range of x)
//! its largest value is at the bucket's top and its smallest at the bottom.
//! Buckets ([`bucket`]): the top 10 bits of x, except that the top 8 of
//! those (x ≥ 0xfe000000, v = 1 − u < 2^−7, where the winning tokens' noise
//! lies and G ≈ −ln v changes fast) are split again by the next 10 bits.
//! The bounds are the noise at a bucket's ends widened by a slack of
//! 2^−12 + |G|·2^−18 (hundreds of ulps) for the wobbles. That they hold for
//! every x is checked exhaustively on the GPU (`cuda_table_check` in the GPU
//! parity tests), not assumed; the unit tests check bucket edges and random
//! inputs on the CPU.
//!
//! The bounds only decide which tokens need no further look (a token whose
//! score cannot reach another's); the noise itself, and so every token and
//! score, is unchanged.

use std::sync::{Arc, OnceLock};

use super::noise;

/// Number of buckets: 1024 by the top 10 bits, 1024 splitting the top 8 of
/// those.
pub const BUCKETS: usize = 2048;

/// The bucket of the Philox bits `x` (as `bucket` in gumbel_sample.cu).
pub fn bucket(x: u32) -> usize {
    if x >= 0xfe00_0000 {
        1024 + ((x >> 15) & 1023) as usize
    } else {
        (x >> 22) as usize
    }
}

/// The smallest and largest x of bucket `b` (buckets 1016..1024 hold no x:
/// their range is covered by 1024..2048; they get their nominal range).
fn range(b: usize) -> (u32, u32) {
    assert!(b < BUCKETS, "bucket {b} out of range (< {BUCKETS})");
    if b < 1024 {
        ((b as u32) << 22, (((b as u64) + 1) << 22) as u32 - 1)
    } else {
        let lo = 0xfe00_0000u32 + (((b - 1024) as u32) << 15);
        (lo, lo + ((1 << 15) - 1))
    }
}

fn slack(g: f32) -> f32 {
    2f32.powi(-12) + g.abs() * 2f32.powi(-18)
}

/// The upper bound of bucket `b`: the noise at its largest input plus the
/// slack.
pub fn bucket_upper(b: usize) -> f32 {
    let g = noise::gumbel_f32(range(b).1);
    g + slack(g)
}

/// The lower bound of bucket `b`: the noise at its smallest input minus the
/// slack.
pub fn bucket_lower(b: usize) -> f32 {
    let g = noise::gumbel_f32(range(b).0);
    g - slack(g)
}

/// The table the CUDA kernels read: (upper, lower) of each bucket,
/// interleaved, computed once.
pub fn bucket_table() -> Arc<[f32]> {
    static TABLE: OnceLock<Arc<[f32]>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            (0..BUCKETS)
                .flat_map(|b| [bucket_upper(b), bucket_lower(b)])
                .collect()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(x: u32) -> bool {
        let b = bucket(x);
        let t = bucket_table();
        let g = noise::gumbel_f32(x);
        t[2 * b + 1] <= g && g <= t[2 * b]
    }

    #[test]
    fn buckets_cover_their_ranges() {
        for b in (0..1016).chain(1024..BUCKETS) {
            let (lo, hi) = range(b);
            assert_eq!(bucket(lo), b);
            assert_eq!(bucket(hi), b);
            if lo > 0 {
                assert_ne!(bucket(lo - 1), b);
            }
        }
        assert_eq!(bucket(u32::MAX), BUCKETS - 1);
    }

    #[test]
    fn bounds_hold_at_bucket_edges_and_random_inputs() {
        let t = bucket_table();
        assert!(t.iter().all(|v| v.is_finite()));
        for b in 0..BUCKETS {
            assert!(t[2 * b + 1] < t[2 * b], "bucket {b}");
        }
        // Bounds rise along x, as the noise does.
        let order: Vec<usize> = (0..1016).chain(1024..BUCKETS).collect();
        for w in order.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(
                t[2 * a] < t[2 * b] && t[2 * a + 1] < t[2 * b + 1],
                "buckets {a}, {b}"
            );
        }
        for b in (0..1016).chain(1024..BUCKETS) {
            let (lo, hi) = range(b);
            let mid = lo + (hi - lo) / 2;
            for x in [lo, lo + 1, mid, hi - 1, hi] {
                assert!(holds(x), "bucket {b}, x = {x:#x}");
            }
        }
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..1_000_000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = (s >> 32) as u32;
            assert!(holds(x), "x = {x:#x}");
        }
    }

    #[test]
    fn bounds_are_tight_where_tokens_win() {
        // A bucket spans little noise in the middle of the range and in the
        // split top: its bounds are close together.
        for b in (64..960).chain(1040..2000) {
            let spread = bucket_upper(b) - bucket_lower(b);
            assert!(spread < 0.07, "bucket {b}: bounds {spread} apart");
        }
    }
}
