//! The m×m mix B·(X·S) over a block of rows, as a blocked matrix product.
//!
//! For one row, output chunk a is Σ_b B[a][b]·chunk_b: B (m×m) times the m×s
//! matrix of chunks. Its columns are independent, and so are different rows'
//! columns, so a block of r rows is one product B·Z with Z of m rows and r·s
//! columns (column (row, i) holds element i of each chunk of that row). The
//! product runs over packed panels of [`PANEL`] columns: gather the panel
//! (m×24, contiguous, fits L1), multiply, scatter back with the scale. Small s
//! (down to s = 1, n = m) thereby still fills whole vectors, and each panel
//! reads B once for 24 columns.

use super::{avx2, scalar, CpuPath};

/// Columns per packed panel: three 8-lane vectors.
pub(crate) const PANEL: usize = 24;

/// Per-thread buffers of the mix: one packed input and one output panel.
pub(crate) struct Scratch {
    z: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    pub(crate) fn new(m: usize) -> Self {
        let len = if m > 1 { m * PANEL } else { 0 };
        Scratch {
            z: vec![0.0; len],
            out: vec![0.0; len],
        }
    }
}

/// The runs of one panel: contiguous pieces `(row, i, column, len)` of the
/// column space `g = row·s + i` from `g0`, `width` columns in all.
fn runs(s: usize, g0: usize, width: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut c = 0;
    std::iter::from_fn(move || {
        if c >= width {
            return None;
        }
        let g = g0 + c;
        let (row, i) = (g / s, g % s);
        let len = (s - i).min(width - c);
        let run = (row, i, c, len);
        c += len;
        Some(run)
    })
}

/// In place on `block` (whole rows of length n = m·s): every row's chunks are
/// replaced by B·chunks, times `scale`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mix_rows(
    block: &mut [f32],
    n: usize,
    m: usize,
    s: usize,
    base: &[f32],
    scale: f32,
    scratch: &mut Scratch,
    path: CpuPath,
) {
    let total = block.len() / n * s;
    let mut g0 = 0;
    while g0 < total {
        let width = PANEL.min(total - g0);
        if width < PANEL {
            // Unused columns take part in the product; keep them finite.
            scratch.z.fill(0.0);
        }
        for (row, i, c, len) in runs(s, g0, width) {
            for b in 0..m {
                let src = row * n + b * s + i;
                scratch.z[b * PANEL + c..b * PANEL + c + len]
                    .copy_from_slice(&block[src..src + len]);
            }
        }
        match path {
            CpuPath::Avx2 => avx2::mix_panel(base, m, &scratch.z, &mut scratch.out),
            CpuPath::Portable => scalar::mix_panel(base, m, &scratch.z, &mut scratch.out, PANEL),
        }
        for (row, i, c, len) in runs(s, g0, width) {
            for a in 0..m {
                let dst = row * n + a * s + i;
                for (d, &v) in block[dst..dst + len]
                    .iter_mut()
                    .zip(&scratch.out[a * PANEL + c..a * PANEL + c + len])
                {
                    *d = v * scale;
                }
            }
        }
        g0 += width;
    }
}
