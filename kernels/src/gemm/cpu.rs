//! The CPU GEMM: workers take tiles in schedule order from one shared
//! counter, as a GPU dispatches blocks, so the schedule decides which panels
//! are in cache together; each tile loops over K in blocks of `tile_k`,
//! widening its A and B panels to int16 (zero-padded to whole micro-tiles and
//! 16-element K steps) and running a 4 × 2 micro-kernel of `vpmaddwd` (AVX2,
//! detected at run time) or portable code. Tiles write disjoint parts of the
//! output and each sums in a fixed order, so results do not depend on the
//! number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{bail, Result};
use rayon::prelude::*;

use super::schedule::tile_map;
use super::GemmConfig;

/// Micro-tile: rows of A and columns of B per inner kernel call.
const MR: usize = 4;
const NR: usize = 2;
/// K elements per inner step (one 256-bit vector of int16).
const KS: usize = 16;

/// The plain triple loop: `out[m, n] = Σ_k a[m, k] · b[n, k]` in int32
/// (A `[M, K]`, B `[N, K]`).
pub fn reference_i32(a: &[i8], b: &[i8], m: usize, n: usize, k: usize) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0i32;
            for p in 0..k {
                s = s.wrapping_add(i32::from(a[i * k + p]) * i32::from(b[j * k + p]));
            }
            out[i * n + j] = s;
        }
    }
    out
}

/// `(acc as f32 · row_scale[m]) · col_scale[n]`, the epilogue every backend
/// rounds in this order.
pub fn scale_output(acc: &[i32], row_scale: &[f32], col_scale: &[f32], n: usize) -> Vec<f32> {
    acc.chunks_exact(n)
        .zip(row_scale)
        .flat_map(|(row, &rs)| {
            row.iter()
                .zip(col_scale)
                .map(move |(&v, &cs)| (v as f32 * rs) * cs)
        })
        .collect()
}

/// The output, shared by the workers; each tile writes only its own cells.
struct Out(*mut i32);
// SAFETY: workers write disjoint tiles (the schedule is a permutation of the
// grid, tested) and the caller's slice outlives the parallel section.
unsafe impl Sync for Out {}

/// Per-worker buffers.
struct Scratch {
    a: Vec<i16>,
    b: Vec<i16>,
    acc: Vec<i32>,
}

/// `out = A · Bᵀ` in int32 (A `[M, K]`, B `[N, K]`, out `[M, N]`), tiles
/// in `cfg`'s order on the current rayon pool.
pub fn gemm_i32_cpu(
    a: &[i8],
    b: &[i8],
    m: usize,
    n: usize,
    k: usize,
    cfg: &GemmConfig,
    out: &mut [i32],
) -> Result<()> {
    cfg.check()?;
    if a.len() != m * k || b.len() != n * k || out.len() != m * n {
        bail!(
            "gemm_i32_cpu: lengths A {} B {} out {} do not match M={m} N={n} K={k}",
            a.len(),
            b.len(),
            out.len()
        );
    }
    let (tiles_m, tiles_n) = cfg.grid(m, n);
    let map = tile_map(cfg.schedule, tiles_m, tiles_n)?;
    let next = AtomicUsize::new(0);
    let dst = Out(out.as_mut_ptr());
    let workers = rayon::current_num_threads().min(map.len()).max(1);
    let (mp, np) = (
        cfg.tile_m.next_multiple_of(MR),
        cfg.tile_n.next_multiple_of(NR),
    );
    let kp = cfg.tile_k.next_multiple_of(KS);
    let avx2 = has_avx2();
    (0..workers).into_par_iter().with_max_len(1).for_each(|_| {
        let mut s = Scratch {
            a: vec![0; mp * kp],
            b: vec![0; np * kp],
            acc: vec![0; mp * np],
        };
        loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            let Some(&packed) = map.get(t) else { break };
            let (tr, tc) = ((packed >> 16) as usize, (packed & 0xffff) as usize);
            tile(a, b, (m, n, k), cfg, (tr, tc), &mut s, avx2, &dst);
        }
    });
    Ok(())
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Widens `src` into `dst` (length kp), zero-padding the tail.
fn widen(src: &[i8], dst: &mut [i16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = i16::from(s);
    }
    dst[src.len()..].fill(0);
}

#[allow(clippy::too_many_arguments)]
fn tile(
    a: &[i8],
    b: &[i8],
    (m, n, k): (usize, usize, usize),
    cfg: &GemmConfig,
    (tr, tc): (usize, usize),
    s: &mut Scratch,
    avx2: bool,
    out: &Out,
) {
    let (r0, c0) = (tr * cfg.tile_m, tc * cfg.tile_n);
    let (rows, cols) = ((m - r0).min(cfg.tile_m), (n - c0).min(cfg.tile_n));
    let (rows_p, cols_p) = (rows.next_multiple_of(MR), cols.next_multiple_of(NR));
    let acc = &mut s.acc[..rows_p * cols_p];
    acc.fill(0);
    for k0 in (0..k).step_by(cfg.tile_k) {
        let kl = (k - k0).min(cfg.tile_k);
        let kp = kl.next_multiple_of(KS);
        for i in 0..rows_p {
            let dst = &mut s.a[i * kp..(i + 1) * kp];
            if i < rows {
                let row = (r0 + i) * k + k0;
                widen(&a[row..row + kl], dst);
            } else {
                dst.fill(0);
            }
        }
        for j in 0..cols_p {
            let dst = &mut s.b[j * kp..(j + 1) * kp];
            if j < cols {
                let col = (c0 + j) * k + k0;
                widen(&b[col..col + kl], dst);
            } else {
                dst.fill(0);
            }
        }
        for i in (0..rows_p).step_by(MR) {
            for j in (0..cols_p).step_by(NR) {
                let ap = &s.a[i * kp..(i + MR) * kp];
                let bp = &s.b[j * kp..(j + NR) * kp];
                let c = &mut acc[i * cols_p + j..];
                micro(ap, bp, kp, c, cols_p, avx2);
            }
        }
    }
    for i in 0..rows {
        // SAFETY: row r0 + i < m and columns c0..c0 + cols < n lie in `out`
        // (length m · n), and no other tile covers them.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add((r0 + i) * n + c0), cols) };
        dst.copy_from_slice(&acc[i * cols_p..i * cols_p + cols]);
    }
}

/// acc[i, j] += Σ_p a[i, p] · b[j, p] for the MR × NR micro-tile (a, b
/// packed with row length kp, a multiple of KS; acc with row stride ldc).
#[inline]
fn micro(a: &[i16], b: &[i16], kp: usize, acc: &mut [i32], ldc: usize, avx2: bool) {
    debug_assert!(a.len() >= MR * kp && b.len() >= NR * kp && kp.is_multiple_of(KS));
    debug_assert!(acc.len() >= (MR - 1) * ldc + NR);
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 was detected; the asserts above bound every access.
        unsafe { avx2_micro(a, b, kp, acc, ldc) };
        return;
    }
    let _ = avx2;
    for i in 0..MR {
        for j in 0..NR {
            let (ar, br) = (&a[i * kp..(i + 1) * kp], &b[j * kp..(j + 1) * kp]);
            let s: i32 = ar
                .iter()
                .zip(br)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .fold(0i32, i32::wrapping_add);
            acc[i * ldc + j] = acc[i * ldc + j].wrapping_add(s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_micro(a: &[i16], b: &[i16], kp: usize, acc: &mut [i32], ldc: usize) {
    use std::arch::x86_64::*;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut c = [[_mm256_setzero_si256(); NR]; MR];
    let mut p = 0;
    while p < kp {
        // SAFETY (all loads): p + 16 ≤ kp and rows < MR (NR) of length kp.
        let b0 = _mm256_loadu_si256(pb.add(p).cast());
        let b1 = _mm256_loadu_si256(pb.add(kp + p).cast());
        for (i, ci) in c.iter_mut().enumerate() {
            let av = _mm256_loadu_si256(pa.add(i * kp + p).cast());
            ci[0] = _mm256_add_epi32(ci[0], _mm256_madd_epi16(av, b0));
            ci[1] = _mm256_add_epi32(ci[1], _mm256_madd_epi16(av, b1));
        }
        p += KS;
    }
    for (i, ci) in c.iter().enumerate() {
        for (j, v) in ci.iter().enumerate() {
            let lo = _mm256_castsi256_si128(*v);
            let hi = _mm256_extracti128_si256::<1>(*v);
            let s = _mm_add_epi32(lo, hi);
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            let cell = &mut acc[i * ldc + j];
            *cell = cell.wrapping_add(_mm_cvtsi128_si32(s));
        }
    }
}
