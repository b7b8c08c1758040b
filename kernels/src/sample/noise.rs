//! Gumbel noise in f32 that every backend computes to the same bits.
//!
//! Library logarithms differ between backends (Rust's `ln`, CUDA's `logf`,
//! Metal's `log` may disagree in the last bit, and fast-math modes change
//! them further), and one ulp is enough to flip an argmax between two close
//! scores. So the noise is built here from operations IEEE 754 rounds exactly
//! the same everywhere: integer and bit operations, conversions of integers
//! below 2^24, and fused multiply–adds (`f32::mul_add`, CUDA `__fmaf_rn`, Metal
//! `fma`). No division, no library call, no operation the compilers may
//! contract or reorder (the CUDA and Metal sources spell every step as an
//! explicit `fma`, multiply or add, and are built without fast math). The
//! CUDA (`src/cuda/gumbel_sample.cu`) and Metal (`src/metal/gumbel_sample.metal`)
//! kernels transcribe these functions step by step.
//!
//! Definitions (all f32, `fma(a, b, c)` = a·b + c rounded once):
//! - [`log_f32`]: ln x for normal positive x, Cephes' `logf` polynomial.
//! - [`neg_log_uniform`]: E = −ln u for the workbench's uniform
//!   u = (x + 0.5)·2^−32 (x the 32 Philox bits), accurate also for u near 1,
//!   where forming u in f32 would lose everything: there E is computed from
//!   v = 1 − u = (¬x + 0.5)·2^−32 (exact in integers) as −ln(1 − v).
//! - [`gumbel_f32`]: G = −ln E, the standard Gumbel variate.
//! - the score of a token is `fma(logit, 1/T, G)` with 1/T rounded once on
//!   the host.

// Constants are given by their bits, the same in the CUDA and Metal sources,
// so no compiler's decimal-to-binary rounding can differ.

/// √2 rounded to f32 (0x3fb504f3), the upper end of the reduced range of
/// [`log_f32`].
const SQRT_2: f32 = f32::from_bits(0x3fb5_04f3);
/// Cephes `logf` polynomial coefficients, highest degree first
/// (7.0376836292e-2, −1.1514610310e-1, …, 3.3333331174e-1).
const P: [f32; 9] = [
    f32::from_bits(0x3d90_21bb),
    f32::from_bits(0xbdeb_d1b8),
    f32::from_bits(0x3def_251a),
    f32::from_bits(0xbdfe_5d4f),
    f32::from_bits(0x3e11_e9bf),
    f32::from_bits(0xbe2a_ae50),
    f32::from_bits(0x3e4c_ceac),
    f32::from_bits(0xbe7f_fffc),
    f32::from_bits(0x3eaa_aaaa),
];
/// ln 2 split into 0.693359375 (few bits, exact times any exponent) and the
/// rest (−2.12194440e-4).
const LN2_HI: f32 = f32::from_bits(0x3f31_8000);
const LN2_LO: f32 = f32::from_bits(0xb95e_8083);
/// Series coefficients of −ln(1 − v) after the leading 1/8: 1/7, 1/6, 1/5,
/// 1/4, 1/3, 1/2, 1, each rounded to nearest f32.
const SERIES: [f32; 7] = [
    f32::from_bits(0x3e12_4925),
    f32::from_bits(0x3e2a_aaab),
    f32::from_bits(0x3e4c_cccd),
    0.25,
    f32::from_bits(0x3eaa_aaab),
    0.5,
    1.0,
];
/// 2^−32.
const TWO_M32: f32 = f32::from_bits(0x2f80_0000);

/// ln x for a normal, positive, finite f32 `x` (what [`gumbel_f32`] feeds
/// it; other inputs give meaningless but deterministic values). Error about
/// one ulp; the tests bound it against f64.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = 2^e · m with m in [1, 2), then m moved into [√½, √2) so that
    // f = m − 1 is small; m·0.5 and m − 1 are exact there.
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let z = f * f;
    let mut p = P[0];
    for &c in &P[1..] {
        p = p.mul_add(f, c);
    }
    let ef = e as f32;
    let y = (f * z) * p;
    let y = ef.mul_add(LN2_LO, y);
    let y = (-0.5f32).mul_add(z, y);
    let r = f + y;
    ef.mul_add(LN2_HI, r)
}

/// The 32-bit integer `x < 2^31` as the nearest f32 (ties to even), from two
/// exactly representable halves and one fma, so no backend's integer
/// conversion rounding matters.
#[inline(always)]
fn u31_to_f32(x: u32) -> f32 {
    let hi = (x >> 8) as f32; // < 2^23: exact
    let lo = (x & 0xff) as f32; // exact
    hi.mul_add(256.0, lo)
}

/// E = −ln u for u = (x + 0.5)·2^−32: an exponential variate, in
/// [about 2^−33, 22.9], never 0 or infinite.
#[inline(always)]
pub fn neg_log_uniform(x: u32) -> f32 {
    if x < 0x8000_0000 {
        // u ≤ ½: |ln u| ≥ ln 2, so u's relative rounding (2^−24) costs no
        // more than that in E. (x + 0.5)·2^−32 is ≥ 2^−33, a normal f32.
        let u = (u31_to_f32(x) + 0.5) * TWO_M32;
        -log_f32(u)
    } else {
        // u > ½: v = 1 − u = (¬x + 0.5)·2^−32 is exact in integers; E = −ln(1 − v).
        let v = (u31_to_f32(!x) + 0.5) * TWO_M32;
        if v <= 0.0625 {
            // −ln(1 − v) = v + v²/2 + … + v⁸/8 + O(v⁹): relative error below
            // 2^−32 for v ≤ 1/16.
            let mut s = 0.125f32;
            for c in SERIES {
                s = s.mul_add(v, c);
            }
            s * v
        } else {
            // 1 − v rounds by at most 2^−25, a relative error of at most
            // 2^−20 in E ≥ 1/16.
            -log_f32(1.0 - v)
        }
    }
}

/// The standard Gumbel variate −ln(−ln u) for the 32 random bits `x`
/// (u = (x + 0.5)·2^−32), in about [−3.13, 22.9].
#[inline(always)]
pub fn gumbel_f32(x: u32) -> f32 {
    -log_f32(neg_log_uniform(x))
}

/// The score of one token: `fma(logit, inv_temperature, G)`. NaN logits give
/// NaN scores, which never win (see [`better`]).
#[inline(always)]
pub fn score(logit: f32, inv_temperature: f32, bits: u32) -> f32 {
    logit.mul_add(inv_temperature, gumbel_f32(bits))
}

/// Whether candidate (s, i) beats the current best (b, j): a higher score,
/// or an equal score at a lower index; NaN never beats anything and anything
/// that is not NaN beats a NaN best. A total preorder on (score, index)
/// whose maximum does not depend on the order of comparisons, so any
/// reduction tree (threads, GPU blocks) finds the same winner.
#[inline(always)]
pub fn better(s: f32, i: u32, b: f32, j: u32) -> bool {
    if s.is_nan() {
        false
    } else if b.is_nan() {
        true
    } else {
        s > b || (s == b && i < j)
    }
}

/// [`log_f32`] without branches (the reduction's choice is a select), so a
/// loop over many values vectorises. Same operations, same bits.
#[inline(always)]
fn log_f32_select(x: f32) -> f32 {
    let bits = x.to_bits();
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m0 > SQRT_2;
    let m = if big { m0 * 0.5 } else { m0 };
    let e = ((bits >> 23) & 0xff) as i32 - 127 + i32::from(big);
    let f = m - 1.0;
    let z = f * f;
    let mut p = P[0];
    for &c in &P[1..] {
        p = p.mul_add(f, c);
    }
    let ef = e as f32;
    let y = (f * z) * p;
    let y = ef.mul_add(LN2_LO, y);
    let y = (-0.5f32).mul_add(z, y);
    let r = f + y;
    ef.mul_add(LN2_HI, r)
}

/// [`u31_to_f32`] through i32 conversions (the values are below 2^31), which
/// vectorise where unsigned ones do not.
#[inline(always)]
fn u31_to_f32_i32(x: u32) -> f32 {
    ((x >> 8) as i32 as f32).mul_add(256.0, (x & 0xff) as i32 as f32)
}

/// [`gumbel_f32`] without branches: every case of [`neg_log_uniform`] is
/// computed and the right one selected, so lanes of Philox bits vectorise.
/// Same operations per case, so the same bits.
#[inline(always)]
pub fn gumbel_f32_select(x: u32) -> f32 {
    let lo = x < 0x8000_0000;
    let u = (u31_to_f32_i32(x & 0x7fff_ffff) + 0.5) * TWO_M32;
    let v = (u31_to_f32_i32(!x & 0x7fff_ffff) + 0.5) * TWO_M32;
    let mut s = 0.125f32;
    for c in SERIES {
        s = s.mul_add(v, c);
    }
    let series = s * v;
    let l = log_f32_select(if lo { u } else { 1.0 - v });
    let e = if !lo && v <= 0.0625 { series } else { -l };
    -log_f32_select(e)
}
