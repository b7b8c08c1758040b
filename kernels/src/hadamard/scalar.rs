//! The portable butterflies: plain loops in the documented order. They are the
//! reference the AVX2 butterflies must match bit for bit, and the fallback on
//! CPUs without AVX2.

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
