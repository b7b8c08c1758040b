//! GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization
//! for Generative Pre-trained Transformers") for one linear layer.
//!
//! Quantizes the weight one input column at a time and spreads each column's
//! rounding error onto the not-yet-quantized columns so that the layer output
//! on calibration data, not the weights themselves, is preserved. The update
//! uses rows of the upper Cholesky factor of `H⁻¹`, which is what makes the
//! whole pass O(cols³ + rows·cols²) instead of re-inverting per column.

use super::rtn::Grid;
use super::{check_finite, check_len, Granularity, WeightQuantizer};

/// Row-major square matrix helper: element `(i, j)` of an `n × n` buffer.
#[inline]
fn at(n: usize, i: usize, j: usize) -> usize {
    i * n + j
}

/// Lower Cholesky factor `L` with `A = L Lᵀ` (row-major `n × n`).
fn cholesky_lower(a: &[f64], n: usize) -> Result<Vec<f64>, String> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[at(n, i, j)];
            for k in 0..j {
                s -= l[at(n, i, k)] * l[at(n, j, k)];
            }
            if i == j {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!(
                        "gptq: matrix not positive definite at pivot {i} (value {s:e}); increase damp"
                    ));
                }
                l[at(n, i, i)] = s.sqrt();
            } else {
                l[at(n, i, j)] = s / l[at(n, j, j)];
            }
        }
    }
    Ok(l)
}

/// Upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = Uᵀ U`), via `H = L Lᵀ`,
/// `H⁻¹ = L⁻ᵀ L⁻¹`, then a Cholesky of `H⁻¹`, as in the reference code.
fn upper_cholesky_of_inverse(h: &[f64], n: usize) -> Result<Vec<f64>, String> {
    let l = cholesky_lower(h, n)?;
    // L⁻¹ by forward substitution, column by column (it is lower triangular).
    let mut linv = vec![0.0; n * n];
    for c in 0..n {
        linv[at(n, c, c)] = 1.0 / l[at(n, c, c)];
        for i in c + 1..n {
            let mut s = 0.0;
            for k in c..i {
                s -= l[at(n, i, k)] * linv[at(n, k, c)];
            }
            linv[at(n, i, c)] = s / l[at(n, i, i)];
        }
    }
    // H⁻¹[i][j] = Σ_k L⁻¹[k][i] L⁻¹[k][j], k ≥ max(i, j).
    let mut hinv = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let s: f64 = (j..n).map(|k| linv[at(n, k, i)] * linv[at(n, k, j)]).sum();
            hinv[at(n, i, j)] = s;
            hinv[at(n, j, i)] = s;
        }
    }
    let m = cholesky_lower(&hinv, n)?;
    // U = Mᵀ.
    let mut u = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            u[at(n, i, j)] = m[at(n, j, i)];
        }
    }
    Ok(u)
}

/// GPTQ for one linear layer `y = W x`.
///
/// * `w`: row-major `[rows = out, cols = in]` weights.
/// * `x`: row-major `[n, cols]` calibration inputs.
/// * `quantizer`: the grid (bits, symmetric, granularity, clipping); the
///   result lies on exactly the grids RTN with this quantizer would use,
///   except that scales are fitted as in the paper: per-tensor and
///   per-channel scales from the original weights before any update, and
///   per-group scales lazily from the *error-updated* weights when the first
///   column of each group is reached.
/// * `damp`: relative dampening; `damp · mean(diag H)` is added to the
///   diagonal (0.01 is the paper's default).
///
/// The Hessian is `H = (2/n) XᵀX` (the `1/n` makes `damp` and conditioning
/// independent of the calibration size; GPTQ is invariant to scaling `H`).
/// Input channels that are never active (`H_ii = 0`) get `H_ii = 1` and zero
/// weights, as in the reference implementation, since they cannot affect the
/// output. Columns are processed in natural order (no act-order) without lazy
/// batching; batching only changes memory traffic, not the result.
/// Arithmetic is in `f64`. Returns the dequantized weights.
///
/// Errors: the quantizer's own checks, shape mismatches, `n = 0`,
/// non-finite inputs, a negative or non-finite `damp`, or a Hessian that is
/// not positive definite even after dampening.
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    quantizer: &WeightQuantizer,
    damp: f64,
) -> Result<Vec<f32>, String> {
    quantizer.validate(w, rows, cols)?;
    check_len("gptq calibration inputs", x.len(), &[n, cols])?;
    check_finite("gptq calibration inputs", x)?;
    if n == 0 {
        return Err("gptq: need at least one calibration row (n = 0)".into());
    }
    if !(damp.is_finite() && damp >= 0.0) {
        return Err(format!(
            "gptq: damp must be finite and non-negative, got {damp}"
        ));
    }
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }

    // H = (2/n) XᵀX, accumulated on the upper triangle then mirrored.
    let mut h = vec![0.0f64; cols * cols];
    for sample in x.chunks(cols) {
        for i in 0..cols {
            let xi = sample[i] as f64;
            if xi == 0.0 {
                continue;
            }
            let row = &mut h[i * cols..(i + 1) * cols];
            for j in i..cols {
                row[j] += xi * sample[j] as f64;
            }
        }
    }
    let f = 2.0 / n as f64;
    for i in 0..cols {
        for j in i..cols {
            let v = h[at(cols, i, j)] * f;
            h[at(cols, i, j)] = v;
            h[at(cols, j, i)] = v;
        }
    }

    let mut wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    // Grids from the original weights (before dead-column zeroing, as in the
    // reference code) for per-tensor and per-channel scales.
    let mut grids: Vec<Grid> = match quantizer.granularity {
        Granularity::PerTensor => vec![quantizer.fit(w); rows],
        Granularity::PerChannel => w.chunks(cols).map(|r| quantizer.fit(r)).collect(),
        Granularity::PerGroup(_) => Vec::new(),
    };
    for i in 0..cols {
        if h[at(cols, i, i)] == 0.0 {
            h[at(cols, i, i)] = 1.0;
            for r in 0..rows {
                wd[r * cols + i] = 0.0;
            }
        }
    }
    let mean_diag = (0..cols).map(|i| h[at(cols, i, i)]).sum::<f64>() / cols as f64;
    for i in 0..cols {
        h[at(cols, i, i)] += damp * mean_diag;
    }
    let u = upper_cholesky_of_inverse(&h, cols)?;

    let mut out = vec![0.0f32; rows * cols];
    let mut group_buf = Vec::new();
    for i in 0..cols {
        if let Granularity::PerGroup(g) = quantizer.granularity {
            if i % g == 0 {
                // Scales follow the weights as updated by earlier columns'
                // error compensation (the paper's grouping strategy).
                grids.clear();
                for r in 0..rows {
                    group_buf.clear();
                    group_buf.extend(wd[r * cols + i..r * cols + i + g].iter().map(|&v| v as f32));
                    grids.push(quantizer.fit(&group_buf));
                }
            }
        }
        let d = u[at(cols, i, i)];
        let urow = &u[i * cols..(i + 1) * cols];
        for (r, grid) in grids.iter().enumerate() {
            let row = &mut wd[r * cols..(r + 1) * cols];
            let q = grid.fake(row[i] as f32);
            out[r * cols + i] = q;
            let err = (row[i] - q as f64) / d;
            // W[:, j>i] −= err · U[i, j]: the optimal compensation of the
            // remaining columns for this column's rounding error.
            for j in i + 1..cols {
                row[j] -= err * urow[j];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::rtn::tests::Rng;
    use super::super::Clip;
    use super::*;

    /// ‖X Wᵀ − X Ŵᵀ‖² (sum over samples and outputs).
    fn output_error(x: &[f32], n: usize, w: &[f32], wq: &[f32], rows: usize, cols: usize) -> f64 {
        let mut e = 0.0;
        for s in 0..n {
            let xs = &x[s * cols..(s + 1) * cols];
            for r in 0..rows {
                let d: f64 = (0..cols)
                    .map(|c| xs[c] as f64 * (w[r * cols + c] as f64 - wq[r * cols + c] as f64))
                    .sum();
                e += d * d;
            }
        }
        e
    }

    /// 64×128 Gaussian layer and 512 calibration rows with strongly
    /// correlated features (shared low-rank factors plus per-feature scale),
    /// the regime where error compensation matters.
    fn layer() -> (Vec<f32>, Vec<f32>, usize, usize, usize) {
        let (rows, cols, n, rank) = (64, 128, 512, 8);
        let mut rng = Rng(42);
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.normal() * 0.1) as f32)
            .collect();
        let mix: Vec<f64> = (0..rank * cols).map(|_| rng.normal()).collect();
        let feat_scale: Vec<f64> = (0..cols)
            .map(|c| 0.5 + 1.5 * ((c * 7) % 11) as f64 / 10.0)
            .collect();
        let mut x = Vec::with_capacity(n * cols);
        for _ in 0..n {
            let z: Vec<f64> = (0..rank).map(|_| rng.normal()).collect();
            for c in 0..cols {
                let shared: f64 = (0..rank).map(|k| z[k] * mix[k * cols + c]).sum();
                x.push(((shared + 0.3 * rng.normal()) * feat_scale[c]) as f32);
            }
        }
        (w, x, rows, cols, n)
    }

    #[test]
    fn gptq_beats_rtn_on_layer_output() {
        let (w, x, rows, cols, n) = layer();
        for bits in [3u8, 4] {
            for symmetric in [true, false] {
                for granularity in [Granularity::PerChannel, Granularity::PerGroup(32)] {
                    let q = WeightQuantizer {
                        bits,
                        symmetric,
                        granularity,
                        clip: Clip::None,
                    };
                    let rtn = q.fake_quantize(&w, rows, cols).unwrap();
                    let g = gptq(&w, rows, cols, &x, n, &q, 0.01).unwrap();
                    let (er, eg) = (
                        output_error(&x, n, &w, &rtn, rows, cols),
                        output_error(&x, n, &w, &g, rows, cols),
                    );
                    eprintln!(
                        "GPTQ/RTN output error, {bits} bits sym={symmetric} {granularity:?}: {:.4} ({eg:.3e} / {er:.3e})",
                        eg / er
                    );
                    assert!(
                        eg < 0.5 * er,
                        "{bits} {symmetric} {granularity:?}: {eg} vs {er}"
                    );
                }
            }
        }
    }

    #[test]
    fn gptq_output_on_grid() {
        // Per-channel: every GPTQ weight is a level of the RTN grid of its row.
        let (w, x, rows, cols, n) = layer();
        let q = WeightQuantizer {
            bits: 4,
            symmetric: true,
            granularity: Granularity::PerChannel,
            clip: Clip::MseSearch,
        };
        let g = gptq(&w, rows, cols, &x, n, &q, 0.01).unwrap();
        for (wr, gr) in w.chunks(cols).zip(g.chunks(cols)) {
            let grid = q.fit(wr);
            for &v in gr {
                let k = v as f64 / grid.scale;
                assert!((k - k.round()).abs() < 1e-4 && k.abs() <= 7.0 + 1e-4);
            }
        }
        // Per-group: at most 2^b distinct values in each group.
        let qg = WeightQuantizer {
            bits: 3,
            symmetric: false,
            granularity: Granularity::PerGroup(16),
            clip: Clip::None,
        };
        let g = gptq(&w, rows, cols, &x, n, &qg, 0.01).unwrap();
        for grp in g.chunks(16) {
            let mut d = grp.to_vec();
            d.sort_by(f32::total_cmp);
            d.dedup();
            assert!(d.len() <= 8);
        }
    }

    #[test]
    fn gptq_dead_columns_and_errors() {
        let (rows, cols, n) = (4, 8, 16);
        let mut rng = Rng(9);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
        // Column 3 never active: its weights become 0; output is unaffected.
        let x: Vec<f32> = (0..n * cols)
            .map(|i| {
                if i % cols == 3 {
                    0.0
                } else {
                    rng.normal() as f32
                }
            })
            .collect();
        let q = WeightQuantizer {
            bits: 4,
            symmetric: true,
            granularity: Granularity::PerChannel,
            clip: Clip::None,
        };
        let g = gptq(&w, rows, cols, &x, n, &q, 0.01).unwrap();
        assert!((0..rows).all(|r| g[r * cols + 3] == 0.0));
        assert!(g.iter().all(|v| v.is_finite()));
        // Rank-deficient X (n < cols) still works thanks to dampening.
        assert!(gptq(&w, rows, cols, &x[..2 * cols], 2, &q, 0.01).is_ok());
        assert!(gptq(&w, rows, cols, &x, n - 1, &q, 0.01)
            .unwrap_err()
            .contains("shape"));
        assert!(gptq(&w, rows, cols, &[], 0, &q, 0.01).is_err());
        assert!(gptq(&w, rows, cols, &x, n, &q, -1.0).is_err());
        assert!(gptq(&w, rows, cols, &x, n, &q, f64::NAN).is_err());
        // Zero dampening on a singular Hessian: an error, not a panic.
        assert!(gptq(&w, rows, cols, &x[..2 * cols], 2, &q, 0.0).is_err());
        let bad_q = WeightQuantizer {
            granularity: Granularity::PerGroup(3),
            ..q
        };
        assert!(gptq(&w, rows, cols, &x, n, &bad_q, 0.01).is_err());
        let mut xb = x.clone();
        xb[0] = f32::INFINITY;
        assert!(gptq(&w, rows, cols, &xb, n, &q, 0.01).is_err());
    }
}
