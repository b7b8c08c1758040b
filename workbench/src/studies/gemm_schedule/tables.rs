//! `gemm_schedule_cpu`: one row per shape and variant (schedule or candle's
//! f32 matmul) with the median time per call over the repetitions, its
//! distribution-free interval (order statistics), int8 GOP/s, and the
//! speedup over row-major from the repetitions' paired ratios.

use super::plan::UnitResult;
use crate::experiment::outputs::{Column, Table};

/// The median of `v` and the order-statistic interval (x_(j), x_(n+1−j))
/// with the largest j whose coverage 1 − 2·P(Bin(n, ½) < j) is at least
/// 95% (for n < 6 no j reaches it: then the range, and its lower coverage).
pub fn median_interval(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    };
    // P(Bin(n, ½) ≤ i) for i = 0.., accumulated.
    let mut cdf = Vec::with_capacity(n + 1);
    let (mut c, mut acc) = (1f64, 0f64);
    for i in 0..=n {
        if i > 0 {
            c = c * (n + 1 - i) as f64 / i as f64;
        }
        acc += c / 2f64.powi(n as i32);
        cdf.push(acc);
    }
    let mut j = 1;
    while j < n / 2 && 1.0 - 2.0 * cdf[j] >= 0.95 {
        j += 1;
    }
    let coverage = 1.0 - 2.0 * cdf[j - 1];
    (median, s[j - 1], s[n - j], coverage)
}

/// The CPU table.
pub fn build(results: &[UnitResult]) -> Vec<Table> {
    let mut rows: Vec<Row> = Vec::new();
    for u in results {
        let base = &u.variants[0].seconds;
        let f32_median = u
            .variants
            .iter()
            .find(|v| v.name == "candle_f32")
            .map(|v| median_interval(&v.seconds).0);
        for v in &u.variants {
            let (med, lo, hi, cov) = median_interval(&v.seconds);
            let ratios: Vec<f64> = base.iter().zip(&v.seconds).map(|(b, t)| b / t).collect();
            let (sp, sp_lo, sp_hi, _) = median_interval(&ratios);
            let s = &u.shape;
            rows.push(Row {
                set: s.set.clone(),
                model: s.model.clone(),
                proj: s.proj.clone(),
                mnk: [s.m as i64, s.n as i64, s.k as i64],
                tile: u.tile.clone(),
                threads: u.threads as i64,
                variant: v.name.clone(),
                repeats: v.seconds.len() as i64,
                calls: u.calls as i64,
                t: [med * 1e3, lo * 1e3, hi * 1e3, cov],
                gops: 2.0 * (s.m * s.n * s.k) as f64 / med / 1e9,
                speedup: if v.name == "candle_f32" {
                    None
                } else {
                    Some([sp, sp_lo, sp_hi])
                },
                vs_f32: f32_median
                    .filter(|_| v.name != "candle_f32")
                    .map(|f| f / med),
                identical: u.identical,
                reference_rows: u.reference_rows as i64,
            });
        }
    }
    let s = |f: fn(&Row) -> String| Column::Str(rows.iter().map(|r| Some(f(r))).collect());
    let i = |f: fn(&Row) -> i64| Column::I64(rows.iter().map(|r| Some(f(r))).collect());
    let x = |f: fn(&Row) -> Option<f64>| Column::F64(rows.iter().map(f).collect());
    vec![Table::new("gemm_schedule_cpu")
        .with("set", s(|r| r.set.clone()))
        .with("model", s(|r| r.model.clone()))
        .with("proj", s(|r| r.proj.clone()))
        .with("m", i(|r| r.mnk[0]))
        .with("n", i(|r| r.mnk[1]))
        .with("k", i(|r| r.mnk[2]))
        .with("tile", s(|r| r.tile.clone()))
        .with("threads", i(|r| r.threads))
        .with("variant", s(|r| r.variant.clone()))
        .with("repeats", i(|r| r.repeats))
        .with("calls_per_repeat", i(|r| r.calls))
        .with("median_ms", x(|r| Some(r.t[0])))
        .with("ci_low_ms", x(|r| Some(r.t[1])))
        .with("ci_high_ms", x(|r| Some(r.t[2])))
        .with("ci_coverage", x(|r| Some(r.t[3])))
        .with("gop_per_s", x(|r| Some(r.gops)))
        .with("speedup_vs_row_major", x(|r| r.speedup.map(|v| v[0])))
        .with("speedup_ci_low", x(|r| r.speedup.map(|v| v[1])))
        .with("speedup_ci_high", x(|r| r.speedup.map(|v| v[2])))
        .with("speedup_vs_candle_f32", x(|r| r.vs_f32))
        .with(
            "identical_results",
            Column::Bool(rows.iter().map(|r| Some(r.identical)).collect()),
        )
        .with("reference_rows", i(|r| r.reference_rows))]
}

struct Row {
    set: String,
    model: String,
    proj: String,
    mnk: [i64; 3],
    tile: String,
    threads: i64,
    variant: String,
    repeats: i64,
    calls: i64,
    t: [f64; 4],
    gops: f64,
    speedup: Option<[f64; 3]>,
    vs_f32: Option<f64>,
    identical: bool,
    reference_rows: i64,
}

#[cfg(test)]
mod tests {
    use super::median_interval;

    #[test]
    fn median_interval_has_the_binomial_coverage() {
        let v: Vec<f64> = (1..=9).rev().map(f64::from).collect();
        let (m, lo, hi, cov) = median_interval(&v);
        // n = 9: (x_(2), x_(8)) covers 1 − 2·10/512.
        assert_eq!((m, lo, hi), (5.0, 2.0, 8.0));
        assert!((cov - (1.0 - 20.0 / 512.0)).abs() < 1e-12);
        let cov9 = cov;
        // n = 5 reaches no 95% interval: the range, at 1 − 2/32.
        let (m, lo, hi, cov) = median_interval(&[3.0, 1.0, 2.0, 5.0, 4.0]);
        assert_eq!((m, lo, hi), (3.0, 1.0, 5.0));
        assert!((cov - 0.9375).abs() < 1e-12);
        // Checked against simulation: the interval holds the true median of
        // a continuous distribution at about its stated rate.
        let mut s = 12345u64;
        let mut hits = 0;
        let trials = 4000;
        for _ in 0..trials {
            let draws: Vec<f64> = (0..9)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect();
            let (_, lo, hi, _) = median_interval(&draws);
            hits += usize::from(lo < 0.5 && 0.5 < hi);
        }
        let rate = hits as f64 / trials as f64;
        assert!((rate - cov9).abs() < 0.015, "{rate} vs {cov9}");
    }
}
