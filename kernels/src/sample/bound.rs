//! Bounds on the Gumbel noise per bucket of Philox bits, for the CUDA
//! sampler's coarse filters (`src/cuda/gumbel_sample.cu`).
//!
//! [`noise::gumbel_f32`] is increasing in the 32 bits x (u = (x + 0.5)·2^−32
//! grows with x, −ln u shrinks, −ln(−ln u) grows; the f32 steps round
//! monotonically up to ulp-sized wobbles), so over the bucket x >> 22 = b its
//! largest value is at the bucket's top, x = (b + 1)·2^22 − 1, and its
//! smallest at the bottom, x = b·2^22. The bounds are those values widened by
//! a slack of 2^−12 + |G|·2^−18 (hundreds of ulps) for the wobbles. That they
//! hold for every x is checked exhaustively on the GPU (`cuda_table_check`
//! in the GPU parity tests), not assumed; the unit tests check bucket edges
//! and random inputs on the CPU.
//!
//! The bounds only decide which tokens need no further look (a token whose
//! score cannot reach another's); the noise itself, and so every token and
//! score, is unchanged.

use std::sync::{Arc, OnceLock};

use super::noise;

/// Buckets: the top `BUCKET_BITS` bits of x.
pub const BUCKET_BITS: u32 = 10;
/// Number of buckets.
pub const BUCKETS: usize = 1 << BUCKET_BITS;

fn slack(g: f32) -> f32 {
    2f32.powi(-12) + g.abs() * 2f32.powi(-18)
}

/// The upper bound of bucket `b`: the noise at its largest input plus the
/// slack.
pub fn bucket_upper(b: usize) -> f32 {
    assert!(b < BUCKETS, "bucket {b} out of range (< {BUCKETS})");
    let top = (((b as u64) + 1) << (32 - BUCKET_BITS)) - 1;
    let g = noise::gumbel_f32(top as u32);
    g + slack(g)
}

/// The lower bound of bucket `b`: the noise at its smallest input minus the
/// slack.
pub fn bucket_lower(b: usize) -> f32 {
    assert!(b < BUCKETS, "bucket {b} out of range (< {BUCKETS})");
    let g = noise::gumbel_f32((b as u32) << (32 - BUCKET_BITS));
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
        let b = (x >> (32 - BUCKET_BITS)) as usize;
        let t = bucket_table();
        let g = noise::gumbel_f32(x);
        t[2 * b + 1] <= g && g <= t[2 * b]
    }

    #[test]
    fn bounds_hold_at_bucket_edges_and_random_inputs() {
        let t = bucket_table();
        assert!(t.iter().all(|v| v.is_finite()));
        // Bounds rise with the bucket, as the noise does, and each bucket's
        // upper bound reaches the next one's lower bound.
        for b in 0..BUCKETS {
            assert!(t[2 * b + 1] < t[2 * b], "bucket {b}");
            if b + 1 < BUCKETS {
                assert!(
                    t[2 * b] < t[2 * b + 2] && t[2 * b + 1] < t[2 * b + 3],
                    "bucket {b}"
                );
                assert!(t[2 * b] > t[2 * b + 3], "bucket {b}");
            }
        }
        for b in 0..BUCKETS as u64 {
            let lo = (b << 22) as u32;
            for x in [lo, lo + 1, lo + 0x1f_ffff, lo + 0x3f_fffe, lo + 0x3f_ffff] {
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
    fn bounds_are_tight_enough_to_filter() {
        // In the middle of the range a bucket spans little noise, so its
        // bounds are close together.
        for b in 64..960 {
            let spread = bucket_upper(b) - bucket_lower(b);
            assert!(spread < 0.05, "bucket {b}: bounds {spread} apart");
        }
    }
}
