//! The x86-64 AVX2 + FMA transform. Only reached through a plan whose path is
//! [`super::CpuPath::Avx2`], which [`super::CpuPath::detect`] grants after a run
//! time feature check.
//!
//! Every operation here is one the portable code performs, in the same order:
//! a butterfly's `u + v` and `u − v` are either plain adds and subtracts or
//! `fma(x, ±1, y)`, and x·(±1) is exact, so the single rounding is the same.
//! The mix is the portable code itself, compiled with AVX2 enabled.

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::super::mix::{MixPlan, Scratch};
    use std::arch::x86_64::*;

    /// x ↦ S·x (then `* scale`), `x.len()` a power of two ≥ 8.
    pub(crate) fn butterflies(x: &mut [f32], scale: Option<f32>) {
        assert!(x.len() >= 8 && x.len().is_power_of_two());
        // SAFETY: plans select this path only after detecting AVX2 and FMA, and
        // `fwht` stays inside `x` (a power-of-two number of 8-float vectors).
        unsafe { fwht(x.as_mut_ptr(), x.len() / 8, scale) }
    }

    /// Sign vectors of the three in-register levels (h = 1, 2, 4 floats).
    #[inline(always)]
    fn signs() -> (__m256, __m256, __m256) {
        // SAFETY (for the intrinsics' own safety): called only from functions
        // compiled with AVX2 enabled.
        unsafe {
            (
                _mm256_setr_ps(1., -1., 1., -1., 1., -1., 1., -1.),
                _mm256_setr_ps(1., 1., -1., -1., 1., 1., -1., -1.),
                _mm256_setr_ps(1., 1., 1., 1., -1., -1., -1., -1.),
            )
        }
    }

    /// The butterflies at distances 1, 2 and 4 inside one 8-lane vector. At
    /// each level, lane i meets its partner (a permute); the lower lane takes
    /// `own + partner` and the upper `partner − own`, both as
    /// `fma(own, ±1, partner)`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn in_register(v: __m256, s1: __m256, s2: __m256, s4: __m256) -> __m256 {
        let p = _mm256_permute_ps::<0b10_11_00_01>(v);
        let v = _mm256_fmadd_ps(v, s1, p);
        let p = _mm256_permute_ps::<0b01_00_11_10>(v);
        let v = _mm256_fmadd_ps(v, s2, p);
        let p = _mm256_permute2f128_ps::<0x01>(v, v);
        _mm256_fmadd_ps(v, s4, p)
    }

    /// The butterflies between the G registers of `r` (distances 1, 2, 4, …
    /// registers, in that order). G is a constant, so the loops unroll and `r`
    /// stays in registers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn across<const G: usize>(r: &mut [__m256; G]) {
        let mut d = 1;
        while d < G {
            for t in 0..G {
                if t & d == 0 {
                    let (u, v) = (r[t], r[t + d]);
                    r[t] = _mm256_add_ps(u, v);
                    r[t + d] = _mm256_sub_ps(u, v);
                }
            }
            d *= 2;
        }
    }

    /// First sweep: groups of G consecutive vectors, the three in-register
    /// levels then log2(G) levels across them.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn first_sweep<const G: usize>(
        p: *mut f32,
        nvec: usize,
        scale: Option<__m256>,
        ahead: usize,
    ) {
        let (s1, s2, s4) = signs();
        let mut base = 0;
        while base < nvec {
            let q = p.add(base * 8);
            if ahead > 0 {
                for t in (0..G).step_by(2) {
                    // A prefetch never faults, so running past the end is harmless.
                    _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(8 * t + ahead) as *const i8);
                }
            }
            let mut r = [_mm256_setzero_ps(); G];
            for (t, v) in r.iter_mut().enumerate() {
                *v = in_register(_mm256_loadu_ps(q.add(8 * t)), s1, s2, s4);
            }
            across::<G>(&mut r);
            if let Some(sc) = scale {
                r.iter_mut().for_each(|v| *v = _mm256_mul_ps(*v, sc));
            }
            for (t, v) in r.iter().enumerate() {
                _mm256_storeu_ps(q.add(8 * t), *v);
            }
            base += G;
        }
    }

    /// A later sweep: log2(R) levels at vector distances h, 2h, … (R vectors
    /// loaded at stride h, combined in registers, stored back).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn radix_sweep<const R: usize>(
        p: *mut f32,
        nvec: usize,
        h: usize,
        scale: Option<__m256>,
    ) {
        let mut base = 0;
        while base < nvec {
            for j in 0..h {
                let q = p.add((base + j) * 8);
                let mut r = [_mm256_setzero_ps(); R];
                for (t, v) in r.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(q.add(8 * h * t));
                }
                across::<R>(&mut r);
                if let Some(sc) = scale {
                    r.iter_mut().for_each(|v| *v = _mm256_mul_ps(*v, sc));
                }
                for (t, v) in r.iter().enumerate() {
                    _mm256_storeu_ps(q.add(8 * h * t), *v);
                }
            }
            base += h * R;
        }
    }

    fn prefetch_on() -> bool {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var_os("WB_NO_PREFETCH").is_none())
    }

    /// Vectors in an L1-resident block (4096 floats, 16 KiB): longer rows do
    /// all the levels inside each block first, then the remaining levels
    /// across blocks, so only those last sweeps run from L2.
    const BLOCK_VECS: usize = 512;

    /// The whole transform of `nvec` (a power of two) vectors at `p`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fwht(p: *mut f32, nvec: usize, scale: Option<f32>) {
        let sc = scale.map(|s| _mm256_set1_ps(s));
        // The first sweep, which reads each line from memory first, asks for
        // the line one row ahead (at least 8 KiB ahead): the next row arrives
        // while this one's later sweeps run in cache.
        let ahead = if prefetch_on() {
            (8 * nvec).max(2048)
        } else {
            0
        };
        if nvec <= BLOCK_VECS {
            levels(p, nvec, 0, nvec.trailing_zeros(), sc, ahead);
        } else {
            for blk in (0..nvec).step_by(BLOCK_VECS) {
                levels(
                    p.add(8 * blk),
                    BLOCK_VECS,
                    0,
                    BLOCK_VECS.trailing_zeros(),
                    None,
                    ahead,
                );
            }
            let done = BLOCK_VECS.trailing_zeros();
            levels(p, nvec, done, nvec.trailing_zeros() - done, sc, 0);
        }
    }

    /// Vector levels `from .. from + count` (level l pairs vectors at
    /// distance 2^l; level 0 of a first call also does the three in-register
    /// levels) over `nvec` vectors at `p`: a first sweep of up to 3 + 3 levels,
    /// then radix-8 sweeps (a smaller radix for the remainder), the scale
    /// fused into whichever sweep is last.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn levels(
        p: *mut f32,
        nvec: usize,
        from: u32,
        count: u32,
        sc: Option<__m256>,
        ahead: usize,
    ) {
        let mut remaining = count;
        let mut h = 1usize << from;
        if from == 0 {
            let first = count.min(3);
            remaining -= first;
            let s = if remaining == 0 { sc } else { None };
            match first {
                0 => first_sweep::<1>(p, nvec, s, ahead),
                1 => first_sweep::<2>(p, nvec, s, ahead),
                2 => first_sweep::<4>(p, nvec, s, ahead),
                _ => first_sweep::<8>(p, nvec, s, ahead),
            }
            h <<= first;
        }
        while remaining > 0 {
            let r = remaining.min(3);
            let s = if remaining == r { sc } else { None };
            match r {
                1 => radix_sweep::<2>(p, nvec, h, s),
                2 => radix_sweep::<4>(p, nvec, h, s),
                _ => radix_sweep::<8>(p, nvec, h, s),
            }
            h <<= r;
            remaining -= r;
        }
    }

    /// One panel of the mix: the portable table method (`mix::mix_panel`)
    /// compiled with AVX2 enabled, so the same operations run on 8 lanes.
    pub(crate) fn mix_panel(plan: &MixPlan, scratch: &mut Scratch) {
        // SAFETY: plans select this path only after detecting AVX2 and FMA.
        unsafe { mix_panel_avx2(plan, scratch) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn mix_panel_avx2(plan: &MixPlan, scratch: &mut Scratch) {
        super::super::mix::mix_panel(plan, scratch)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use imp::{butterflies, mix_panel};

/// Other architectures never select the AVX2 path; these keep the dispatch
/// code the same everywhere.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn butterflies(x: &mut [f32], scale: Option<f32>) {
    super::scalar::butterflies(x, scale)
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn mix_panel(plan: &super::mix::MixPlan, scratch: &mut super::mix::Scratch) {
    super::mix::mix_panel(plan, scratch)
}
