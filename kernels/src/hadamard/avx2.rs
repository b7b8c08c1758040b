//! The x86-64 AVX2 + FMA transform. Only reached through a plan whose path is
//! [`super::CpuPath::Avx2`], which [`super::CpuPath::detect`] grants after a run
//! time feature check.
//!
//! Every operation here is one the portable code performs, in the same order:
//! a butterfly's `u + v` and `u − v` are either plain adds and subtracts or
//! `fma(x, ±1, y)`, and x·(±1) is exact, so the single rounding is the same.

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::super::mix::PANEL;
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
    unsafe fn first_sweep<const G: usize>(p: *mut f32, nvec: usize, scale: Option<__m256>) {
        let (s1, s2, s4) = signs();
        let mut base = 0;
        while base < nvec {
            let q = p.add(base * 8);
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

    /// The whole transform of `nvec` (a power of two) vectors at `p`: one first
    /// sweep of up to 6 levels, then radix-8 sweeps (a smaller radix for the
    /// remainder), the scale fused into whichever sweep is last.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fwht(p: *mut f32, nvec: usize, scale: Option<f32>) {
        let levels = nvec.trailing_zeros();
        let first = levels.min(3);
        let mut remaining = levels - first;
        let sc = scale.map(|s| _mm256_set1_ps(s));
        let first_scale = if remaining == 0 { sc } else { None };
        match first {
            0 => first_sweep::<1>(p, nvec, first_scale),
            1 => first_sweep::<2>(p, nvec, first_scale),
            2 => first_sweep::<4>(p, nvec, first_scale),
            _ => first_sweep::<8>(p, nvec, first_scale),
        }
        let mut h = 1usize << first;
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

    /// One packed panel of the mix (see `scalar::mix_panel`), `PANEL` = 24
    /// columns: 4 output rows × 3 vectors of accumulators, one broadcast ±1
    /// per row and step, summed in order b = 0, 1, ….
    pub(crate) fn mix_panel(base: &[f32], m: usize, z: &[f32], out: &mut [f32]) {
        assert!(base.len() == m * m && z.len() >= m * PANEL && out.len() >= m * PANEL);
        // SAFETY: AVX2 and FMA were detected (see `butterflies`); the bounds
        // were asserted just above.
        unsafe { mix_panel_impl(base.as_ptr(), m, z.as_ptr(), out.as_mut_ptr()) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn mix_panel_impl(base: *const f32, m: usize, z: *const f32, out: *mut f32) {
        const _: () = assert!(PANEL == 24);
        let mut a = 0;
        while a + 4 <= m {
            let mut acc = [[_mm256_setzero_ps(); 3]; 4];
            for b in 0..m {
                let zp = z.add(b * PANEL);
                let zv = [
                    _mm256_loadu_ps(zp),
                    _mm256_loadu_ps(zp.add(8)),
                    _mm256_loadu_ps(zp.add(16)),
                ];
                for (r, row) in acc.iter_mut().enumerate() {
                    let w = _mm256_broadcast_ss(&*base.add((a + r) * m + b));
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = _mm256_fmadd_ps(w, zv[c], *v);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    _mm256_storeu_ps(out.add((a + r) * PANEL + 8 * c), *v);
                }
            }
            a += 4;
        }
        while a < m {
            let mut acc = [_mm256_setzero_ps(); 3];
            for b in 0..m {
                let zp = z.add(b * PANEL);
                let w = _mm256_broadcast_ss(&*base.add(a * m + b));
                for (c, v) in acc.iter_mut().enumerate() {
                    *v = _mm256_fmadd_ps(w, _mm256_loadu_ps(zp.add(8 * c)), *v);
                }
            }
            for (c, v) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(a * PANEL + 8 * c), *v);
            }
            a += 1;
        }
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
pub(crate) fn mix_panel(base: &[f32], m: usize, z: &[f32], out: &mut [f32]) {
    super::scalar::mix_panel(base, m, z, out, super::mix::PANEL)
}
