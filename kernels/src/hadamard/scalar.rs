//! The portable transform: plain loops in the documented order. It is the
//! reference the fast paths must match bit for bit, and the fallback on CPUs
//! without AVX2.

/// x ↦ S·x (S the Sylvester matrix of order `x.len()`), then `* scale`.
///
/// Pass h combines pairs at distance h, one Kronecker factor [[1, 1], [1, −1]]
/// per index bit, from the lowest bit up.
pub(crate) fn butterflies(x: &mut [f32], scale: Option<f32>) {
    let mut h = 1;
    while h < x.len() {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*a, *b);
                *a = u + v;
                *b = u - v;
            }
        }
        h *= 2;
    }
    if let Some(scale) = scale {
        x.iter_mut().for_each(|v| *v *= scale);
    }
}

/// One packed panel of the mix: `out[a][c] = Σ_b base[a][b]·z[b][c]` for
/// panels of `width` columns (row-major, row stride `width`), summed in order
/// b = 0, 1, …; `base` is m×m row-major with ±1.0 entries.
pub(crate) fn mix_panel(base: &[f32], m: usize, z: &[f32], out: &mut [f32], width: usize) {
    for (orow, brow) in out.chunks_exact_mut(width).zip(base.chunks_exact(m)) {
        orow.fill(0.0);
        for (&sign, zrow) in brow.iter().zip(z.chunks_exact(width)) {
            for (o, &v) in orow.iter_mut().zip(zrow) {
                *o += sign * v;
            }
        }
    }
}
