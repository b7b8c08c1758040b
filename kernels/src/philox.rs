//! Philox4x32-10, the counter-based generator of Salmon et al. (SC'11), with
//! Random123's constants, and the workbench's keyed uniform built on it.
//!
//! A counter-based generator is a pure function `block(counter, key) -> [u32; 4]`.
//! The workbench keys every random number by `(seed, position, token, stream)`, so a
//! drafter on one device and a verifier on another draw the same noise for the same
//! token at the same position without sharing any state.
//!
//! # Layout (every backend must follow it)
//! - key = `[seed as u32, (seed >> 32) as u32]`
//! - counter = `[position as u32, (position >> 32) as u32, token / 4, stream]`
//! - the value for `token` is lane `token % 4` of that block.
//!
//! Four consecutive tokens therefore share one block, which makes a full vocabulary
//! of Gumbel noise cost `V / 4` blocks.
//!
//! Uniforms use Random123's open-open conversion `(x + 0.5) * 2^-32`, so they lie
//! strictly inside (0, 1) and `-ln(u)` is always finite and positive.

/// First multiplier of Philox4x32 (Random123's `PHILOX_M4x32_0`).
pub const M0: u32 = 0xD251_1F53;
/// Second multiplier of Philox4x32 (Random123's `PHILOX_M4x32_1`).
pub const M1: u32 = 0xCD9E_8D57;
/// First Weyl key increment (golden ratio, `PHILOX_W32_0`).
pub const W0: u32 = 0x9E37_79B9;
/// Second Weyl key increment (sqrt(3) - 1, `PHILOX_W32_1`).
pub const W1: u32 = 0xBB67_AE85;
/// Number of rounds of the variant used here.
pub const ROUNDS: usize = 10;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let product = (a as u64) * (b as u64);
    ((product >> 32) as u32, product as u32)
}

/// The raw Philox4x32-10 bijection: four 32-bit outputs for a counter and a key.
#[inline(always)]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..ROUNDS {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c0);
        let (hi1, lo1) = mulhilo(M1, c2);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    [c0, c1, c2, c3]
}

/// Philox4x32-10 on `N` counters at once, in structure-of-arrays form: `counters[w][i]`
/// is word `w` of counter `i`, and so is the output. Independent lanes let the
/// compiler interleave or vectorise the rounds, which a single block's
/// latency-bound chain of multiplies cannot use; every lane equals
/// [`philox4x32_10`] on its counter.
#[inline(always)]
pub fn philox4x32_10_lanes<const N: usize>(
    counters: [[u32; N]; 4],
    key: [u32; 2],
) -> [[u32; N]; 4] {
    #[cfg(target_arch = "x86_64")]
    if N == 8 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: N == 8, so both arrays have the layout of [[u32; 8]; 4], and the
        // CPU supports AVX2 (checked just above; std caches the check).
        unsafe {
            let c = *(counters.as_ptr() as *const [[u32; 8]; 4]);
            let out = avx2::philox8(c, key);
            return *(out.as_ptr() as *const [[u32; N]; 4]);
        }
    }
    philox4x32_10_lanes_scalar(counters, key)
}

/// [`philox4x32_10_lanes`] without SIMD: scalar blocks side by side, which the
/// CPU overlaps (a single block is a latency-bound chain of multiplies).
#[inline(always)]
pub fn philox4x32_10_lanes_scalar<const N: usize>(
    counters: [[u32; N]; 4],
    key: [u32; 2],
) -> [[u32; N]; 4] {
    let mut out = [[0u32; N]; 4];
    for i in 0..N {
        let b = philox4x32_10(
            [
                counters[0][i],
                counters[1][i],
                counters[2][i],
                counters[3][i],
            ],
            key,
        );
        for w in 0..4 {
            out[w][i] = b[w];
        }
    }
    out
}

/// Eight Philox blocks in AVX2 registers: one 32-bit lane per block.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{M0, M1, ROUNDS, W0, W1};
    use std::arch::x86_64::*;

    /// High and low halves of `m * c` for eight 32-bit lanes, where `m` holds the
    /// same multiplier in every lane. `_mm256_mul_epu32` multiplies the even
    /// lanes into 64-bit products; the odd lanes are shifted down first.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mulhilo(m: __m256i, c: __m256i) -> (__m256i, __m256i) {
        let even = _mm256_mul_epu32(m, c);
        let odd = _mm256_mul_epu32(m, _mm256_srli_epi64::<32>(c));
        let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        (hi, lo)
    }

    /// Philox4x32-10 on eight counters (structure of arrays).
    #[target_feature(enable = "avx2")]
    pub fn philox8(c: [[u32; 8]; 4], key: [u32; 2]) -> [[u32; 8]; 4] {
        // SAFETY: unaligned loads and stores of [u32; 8] arrays, 32 bytes each.
        let load = |a: &[u32; 8]| unsafe { _mm256_loadu_si256(a.as_ptr() as *const __m256i) };
        let (mut c0, mut c1, mut c2, mut c3) = (load(&c[0]), load(&c[1]), load(&c[2]), load(&c[3]));
        let m0 = _mm256_set1_epi32(M0 as i32);
        let m1 = _mm256_set1_epi32(M1 as i32);
        let (mut k0, mut k1) = (key[0], key[1]);
        for round in 0..ROUNDS {
            if round > 0 {
                k0 = k0.wrapping_add(W0);
                k1 = k1.wrapping_add(W1);
            }
            let (hi0, lo0) = mulhilo(m0, c0);
            let (hi1, lo1) = mulhilo(m1, c2);
            let k0v = _mm256_set1_epi32(k0 as i32);
            let k1v = _mm256_set1_epi32(k1 as i32);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), k0v);
            c1 = lo1;
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), k1v);
            c3 = lo0;
        }
        let mut out = [[0u32; 8]; 4];
        for (w, v) in [c0, c1, c2, c3].into_iter().enumerate() {
            // SAFETY: see the loads above.
            unsafe { _mm256_storeu_si256(out[w].as_mut_ptr() as *mut __m256i, v) };
        }
        out
    }
}

/// The blocks of `N` consecutive positions `position..position + N` for one quad
/// and stream, as `[word][lane]`.
#[inline(always)]
pub fn blocks_by_position<const N: usize>(
    seed: u64,
    position: u64,
    quad: u32,
    stream: u32,
) -> [[u32; N]; 4] {
    let counters = [
        std::array::from_fn(|i| (position + i as u64) as u32),
        std::array::from_fn(|i| ((position + i as u64) >> 32) as u32),
        [quad; N],
        [stream; N],
    ];
    philox4x32_10_lanes(counters, key_of(seed))
}

/// The blocks of `N` consecutive quads `quad..quad + N` (tokens `4 quad ..
/// 4 (quad + N)`) at one position and stream, as `[word][lane]`.
#[inline(always)]
pub fn blocks_by_quad<const N: usize>(
    seed: u64,
    position: u64,
    quad: u32,
    stream: u32,
) -> [[u32; N]; 4] {
    let counters = [
        [position as u32; N],
        [(position >> 32) as u32; N],
        std::array::from_fn(|i| quad.wrapping_add(i as u32)),
        [stream; N],
    ];
    philox4x32_10_lanes(counters, key_of(seed))
}

/// Random123's open-open conversion of 32 random bits to a double in (0, 1).
#[inline(always)]
pub fn u01_open_open(bits: u32) -> f64 {
    (bits as f64 + 0.5) * (1.0 / 4_294_967_296.0)
}

/// The key for a 64-bit seed.
#[inline(always)]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The block holding tokens `4 * quad .. 4 * quad + 3` at `position` in `stream`.
#[inline(always)]
pub fn block(seed: u64, position: u64, quad: u32, stream: u32) -> [u32; 4] {
    philox4x32_10(
        [position as u32, (position >> 32) as u32, quad, stream],
        key_of(seed),
    )
}

/// The 32 random bits keyed by `(seed, position, token, stream)`.
#[inline(always)]
pub fn bits(seed: u64, position: u64, token: u32, stream: u32) -> u32 {
    block(seed, position, token / 4, stream)[(token % 4) as usize]
}

/// The uniform in (0, 1) keyed by `(seed, position, token, stream)`.
#[inline(always)]
pub fn uniform(seed: u64, position: u64, token: u32, stream: u32) -> f64 {
    u01_open_open(bits(seed, position, token, stream))
}

/// Standard Gumbel noise `-ln(-ln u)` keyed by `(seed, position, token, stream)`.
#[inline(always)]
pub fn gumbel(seed: u64, position: u64, token: u32, stream: u32) -> f64 {
    -(-uniform(seed, position, token, stream).ln()).ln()
}

/// A sequential view of one `(seed, position, stream)`: the values for tokens
/// 0, 1, 2, ... in order. Useful where an algorithm needs a variable number of
/// random numbers (rejection samplers) but must stay a pure function of its key.
#[derive(Clone, Debug)]
pub struct PhiloxStream {
    seed: u64,
    position: u64,
    stream: u32,
    next_token: u64,
    buffer: [u32; 4],
}

impl PhiloxStream {
    /// The stream of values for `(seed, position, stream)`, starting at token 0.
    pub fn new(seed: u64, position: u64, stream: u32) -> Self {
        PhiloxStream {
            seed,
            position,
            stream,
            next_token: 0,
            buffer: [0; 4],
        }
    }

    /// The next 32 random bits (token `t` of the stream, then `t + 1`, ...).
    ///
    /// # Panics
    /// After 2^34 values, where the token counter would wrap; no use in the
    /// workbench comes near that.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        let token = self.next_token;
        assert!(token < (1u64 << 34), "Philox stream exhausted");
        let lane = (token % 4) as usize;
        if lane == 0 {
            self.buffer = block(self.seed, self.position, (token / 4) as u32, self.stream);
        }
        self.next_token += 1;
        self.buffer[lane]
    }

    /// The next 64 random bits (two consecutive tokens, low word first).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        let hi = self.next_u32() as u64;
        lo | (hi << 32)
    }

    /// The next uniform in (0, 1).
    #[inline]
    pub fn next_uniform(&mut self) -> f64 {
        u01_open_open(self.next_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Random123's tests/kat_vectors for philox4x32 with 10 rounds.
    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn lanes_equal_single_blocks() {
        let seed = 0xdead_beef_0000_0001;
        let scalar = philox4x32_10_lanes_scalar::<8>(
            std::array::from_fn(|w| std::array::from_fn(|i| (w * 8 + i) as u32 * 0x9E37_79B9)),
            [1, 2],
        );
        let fast = philox4x32_10_lanes::<8>(
            std::array::from_fn(|w| std::array::from_fn(|i| (w * 8 + i) as u32 * 0x9E37_79B9)),
            [1, 2],
        );
        assert_eq!(scalar, fast);
        let by_position = blocks_by_position::<8>(seed, (1 << 32) - 3, 5, 7);
        let by_quad = blocks_by_quad::<8>(seed, 99, u32::MAX - 2, 7);
        for lane in 0..8 {
            let a = block(seed, (1 << 32) - 3 + lane as u64, 5, 7);
            let b = block(seed, 99, (u32::MAX - 2).wrapping_add(lane as u32), 7);
            for w in 0..4 {
                assert_eq!(by_position[w][lane], a[w]);
                assert_eq!(by_quad[w][lane], b[w]);
            }
        }
    }

    #[test]
    fn uniforms_are_strictly_inside_the_unit_interval() {
        assert!(u01_open_open(0) > 0.0);
        assert!(u01_open_open(u32::MAX) < 1.0);
        assert!(gumbel(0, 0, 0, 0).is_finite());
    }

    #[test]
    fn keyed_values_follow_the_documented_layout() {
        let seed = 0x0123_4567_89ab_cdef;
        let position = 0x0000_0005_0000_0007;
        let b = philox4x32_10([7, 5, 2, 9], [0x89ab_cdef, 0x0123_4567]);
        for lane in 0..4u32 {
            assert_eq!(bits(seed, position, 8 + lane, 9), b[lane as usize]);
        }
        let mut s = PhiloxStream::new(seed, position, 9);
        for token in 0..12 {
            assert_eq!(s.next_u32(), bits(seed, position, token, 9));
        }
    }

    #[test]
    fn different_keys_give_different_values() {
        let a = uniform(1, 2, 3, 4);
        assert_ne!(a, uniform(2, 2, 3, 4));
        assert_ne!(a, uniform(1, 3, 3, 4));
        assert_ne!(a, uniform(1, 2, 4, 4));
        assert_ne!(a, uniform(1, 2, 3, 5));
    }

    #[test]
    fn uniform_mean_and_variance_are_right() {
        let n = 200_000u64;
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for i in 0..n {
            let u = uniform(42, i, 0, 0);
            sum += u;
            sum_sq += u * u;
        }
        let mean = sum / n as f64;
        let var = sum_sq / n as f64 - mean * mean;
        // Standard error of the mean is sqrt(1/12/n) ~ 6.5e-4; allow 5 of them.
        assert!((mean - 0.5).abs() < 5.0 * (1.0 / 12.0 / n as f64).sqrt());
        assert!((var - 1.0 / 12.0).abs() < 2e-3);
    }
}
