//! The QAT tables, built from every run's result: curves, final results, the
//! post-training quantization of each final model, the learning-rate sweep,
//! each optimizer at its best learning rate, and Muon against AdamW by seed.

use super::config::QatConfig;
use super::plan::{ParameterGroup, RunResult};
use super::stats::{argmin_finite, mean_t_interval};
use crate::experiment::outputs::{distinct, Column, Table};

/// A table built row by row.
struct Builder {
    table: Table,
}

impl Builder {
    fn new(name: &str) -> Self {
        Builder {
            table: Table::new(name),
        }
    }

    fn str<T>(mut self, name: &str, rows: &[T], f: impl Fn(&T) -> String) -> Self {
        let c = Column::Str(rows.iter().map(|r| Some(f(r))).collect());
        self.table = self.table.with(name, c);
        self
    }

    fn int<T>(mut self, name: &str, rows: &[T], f: impl Fn(&T) -> i64) -> Self {
        let c = Column::I64(rows.iter().map(|r| Some(f(r))).collect());
        self.table = self.table.with(name, c);
        self
    }

    fn bool<T>(mut self, name: &str, rows: &[T], f: impl Fn(&T) -> bool) -> Self {
        let c = Column::Bool(rows.iter().map(|r| Some(f(r))).collect());
        self.table = self.table.with(name, c);
        self
    }

    /// A float column; NaN (not applicable, e.g. KL to the start of a scratch
    /// run, or an interval from one seed) becomes an empty cell.
    fn f64<T>(mut self, name: &str, rows: &[T], f: impl Fn(&T) -> f64) -> Self {
        let c = Column::F64(
            rows.iter()
                .map(|r| Some(f(r)).filter(|v| !v.is_nan()))
                .collect(),
        );
        self.table = self.table.with(name, c);
        self
    }
}

/// The best learning rate of each (mode, optimizer): the one whose mean final
/// quantized loss over seeds is lowest.
pub fn best_lrs(results: &[RunResult]) -> Vec<(String, String, f64)> {
    let mut best = Vec::new();
    let keys = distinct(
        &results
            .iter()
            .map(|r| (r.mode.clone(), r.optimizer.clone()))
            .collect::<Vec<_>>(),
    );
    for (mode, optimizer) in keys {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.mode == mode && r.optimizer == optimizer)
            .collect();
        let lrs = distinct(&runs.iter().map(|r| r.lr).collect::<Vec<_>>());
        let means: Vec<f64> = lrs
            .iter()
            .map(|lr| {
                let v: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.lr == *lr)
                    .map(|r| r.quant_loss)
                    .collect();
                mean_t_interval(&v).0
            })
            .collect();
        if let Some(i) = argmin_finite(&means) {
            best.push((mode, optimizer, lrs[i]));
        }
    }
    best
}

fn is_best(best: &[(String, String, f64)], r: &RunResult) -> bool {
    best.iter()
        .any(|(m, o, lr)| *m == r.mode && *o == r.optimizer && *lr == r.lr)
}

/// Weight bits of a weight variant name (`f32` 32, `bf16`/`f16` 16).
pub fn variant_bits(name: &str) -> i64 {
    match name {
        "f32" => 32,
        "bf16" | "f16" => 16,
        _ => crate::model::transforms::parse_weight_quantizer(name)
            .map(|q| q.bits as i64)
            .unwrap_or(0),
    }
}

/// Every table of a point.
pub fn build(config: &QatConfig, groups: &[ParameterGroup], results: &[RunResult]) -> Vec<Table> {
    let best = best_lrs(results);
    let vocab = groups
        .iter()
        .find(|g| g.name == "model.embed_tokens.weight")
        .map_or(1, |g| g.shape[0]);
    let uniform = (vocab as f64).ln();
    vec![
        curves(results, &best),
        finals(config, results, &best),
        ptq(results, &best),
        sweep(results, &best, uniform),
        headline(config, results, &best),
        compare(results, &best),
        split(groups),
    ]
}

fn curves(results: &[RunResult], best: &[(String, String, f64)]) -> Table {
    // (run, curve point index) pairs, runs in unit order.
    let rows: Vec<(&RunResult, usize)> = results
        .iter()
        .flat_map(|r| (0..r.curve.len()).map(move |i| (r, i)))
        .collect();
    fn point<'a>(x: &(&'a RunResult, usize)) -> &'a super::plan::CurvePoint {
        &x.0.curve[x.1]
    }
    // Mean training loss over the steps since the previous evaluation.
    let train_loss = |x: &(&RunResult, usize)| -> f64 {
        let (r, i) = *x;
        let to = r.curve[i].step;
        let from = if i == 0 { to } else { r.curve[i - 1].step };
        let v: Vec<f64> = r
            .history
            .iter()
            .filter(|h| h.step > from && h.step <= to)
            .map(|h| h.train_loss)
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Builder::new("qat_curves")
        .str("mode", &rows, |x| x.0.mode.clone())
        .str("optimizer", &rows, |x| x.0.optimizer.clone())
        .f64("lr", &rows, |x| x.0.lr)
        .int("seed", &rows, |x| x.0.seed as i64)
        .bool("best_lr", &rows, |x| is_best(best, x.0))
        .int("step", &rows, |x| point(x).step as i64)
        .int("tokens", &rows, |x| {
            (point(x).step * x.0.tokens_per_step) as i64
        })
        .f64("train_loss", &rows, train_loss)
        .f64("fp_loss", &rows, |x| point(x).fp_loss)
        .f64("quant_loss", &rows, |x| point(x).quant_loss)
        .f64("quant_gap", &rows, |x| {
            point(x).quant_loss - point(x).fp_loss
        })
        .f64("act_kurtosis_mean", &rows, |x| {
            point(x).outliers.act_kurtosis_mean
        })
        .f64("act_kurtosis_max", &rows, |x| {
            point(x).outliers.act_kurtosis_max
        })
        .f64("act_absmax", &rows, |x| point(x).outliers.act_absmax)
        .f64("act_max_over_median", &rows, |x| {
            point(x).outliers.act_max_over_median
        })
        .f64("residual_kurtosis_max", &rows, |x| {
            point(x).outliers.residual_kurtosis_max
        })
        .f64("residual_absmax", &rows, |x| {
            point(x).outliers.residual_absmax
        })
        .f64("weight_kurtosis_mean", &rows, |x| {
            point(x).outliers.weight_kurtosis_mean
        })
        .f64("weight_kurtosis_max", &rows, |x| {
            point(x).outliers.weight_kurtosis_max
        })
        .f64("weight_absmax", &rows, |x| point(x).outliers.weight_absmax)
        .f64("weight_max_over_median", &rows, |x| {
            point(x).outliers.weight_max_over_median
        })
        .table
}

/// The trained quantizer's post-training row under `rotation`, if measured.
fn rtn_loss(config: &QatConfig, r: &RunResult, rotation: &str) -> f64 {
    r.ptq
        .iter()
        .find(|p| p.weights == config.quant.weights && p.rotation == rotation)
        .map_or(f64::NAN, |p| p.loss)
}

/// The first rotation other than `none` in the final evaluation, if any.
pub fn rotated(config: &QatConfig) -> Option<&str> {
    config
        .eval
        .rotations
        .iter()
        .map(String::as_str)
        .find(|r| *r != "none")
}

fn finals(config: &QatConfig, results: &[RunResult], best: &[(String, String, f64)]) -> Table {
    let rot = rotated(config).unwrap_or("none").to_string();
    let last = |r: &RunResult| {
        r.curve
            .last()
            .map(|p| p.outliers.clone())
            .unwrap_or_default()
    };
    Builder::new("qat_final")
        .str("mode", results, |r| r.mode.clone())
        .str("optimizer", results, |r| r.optimizer.clone())
        .f64("lr", results, |r| r.lr)
        .int("seed", results, |r| r.seed as i64)
        .bool("best_lr", results, |r| is_best(best, r))
        .int("steps", results, |r| r.history.len() as i64)
        .int("tokens", results, |r| {
            (r.history.len() * r.tokens_per_step) as i64
        })
        .f64("fp_loss", results, |r| r.fp_loss)
        .f64("fp_ppl", results, |r| r.fp_loss.exp())
        .f64("quant_loss", results, |r| r.quant_loss)
        .f64("quant_ppl", results, |r| r.quant_loss.exp())
        .f64("quant_gap", results, |r| r.quant_loss - r.fp_loss)
        .f64("rtn_loss", results, |r| rtn_loss(config, r, "none"))
        .str("rotation", results, |_| rot.clone())
        .f64("rtn_rotated_loss", results, |r| rtn_loss(config, r, &rot))
        .f64("kl_start_fp", results, |r| r.kl_start_fp)
        .f64("kl_start_quant", results, |r| r.kl_start_quant)
        .f64("act_kurtosis_mean", results, |r| last(r).act_kurtosis_mean)
        .f64("act_kurtosis_max", results, |r| last(r).act_kurtosis_max)
        .f64("act_absmax", results, |r| last(r).act_absmax)
        .f64("act_max_over_median", results, |r| {
            last(r).act_max_over_median
        })
        .f64("residual_kurtosis_max", results, |r| {
            last(r).residual_kurtosis_max
        })
        .f64("weight_kurtosis_mean", results, |r| {
            last(r).weight_kurtosis_mean
        })
        .f64("weight_kurtosis_max", results, |r| {
            last(r).weight_kurtosis_max
        })
        .f64("weight_absmax", results, |r| last(r).weight_absmax)
        .f64("weight_max_over_median", results, |r| {
            last(r).weight_max_over_median
        })
        .table
}

fn ptq(results: &[RunResult], best: &[(String, String, f64)]) -> Table {
    let rows: Vec<(&RunResult, usize)> = results
        .iter()
        .flat_map(|r| (0..r.ptq.len()).map(move |i| (r, i)))
        .collect();
    fn p<'a>(x: &(&'a RunResult, usize)) -> &'a super::plan::PtqRow {
        &x.0.ptq[x.1]
    }
    Builder::new("qat_ptq")
        .str("mode", &rows, |x| x.0.mode.clone())
        .str("optimizer", &rows, |x| x.0.optimizer.clone())
        .f64("lr", &rows, |x| x.0.lr)
        .int("seed", &rows, |x| x.0.seed as i64)
        .bool("best_lr", &rows, |x| is_best(best, x.0))
        .str("rotation", &rows, |x| p(x).rotation.clone())
        .str("weights", &rows, |x| p(x).weights.clone())
        .int("bits", &rows, |x| variant_bits(&p(x).weights))
        .f64("loss", &rows, |x| p(x).loss)
        .f64("ppl", &rows, |x| p(x).loss.exp())
        .f64("kl_to_fp", &rows, |x| p(x).kl_to_fp)
        .f64("kl_to_start", &rows, |x| p(x).kl_to_start)
        .table
}

/// Runs grouped by (mode, optimizer, lr), in unit order.
fn groups(results: &[RunResult]) -> Vec<Vec<&RunResult>> {
    let keys = distinct(
        &results
            .iter()
            .map(|r| (r.mode.clone(), r.optimizer.clone(), r.lr))
            .collect::<Vec<_>>(),
    );
    keys.iter()
        .map(|(m, o, lr)| {
            results
                .iter()
                .filter(|r| r.mode == *m && r.optimizer == *o && r.lr == *lr)
                .collect()
        })
        .collect()
}

/// `f` over a group's runs, with its mean and t interval.
fn over(g: &[&RunResult], f: impl Fn(&RunResult) -> f64) -> (f64, f64, f64) {
    mean_t_interval(&g.iter().map(|r| f(r)).collect::<Vec<_>>())
}

/// `uniform`: the loss of a uniform prediction, ln(vocabulary); a run ending
/// above it has diverged.
fn sweep(results: &[RunResult], best: &[(String, String, f64)], uniform: f64) -> Table {
    let g = groups(results);
    let q = |g: &Vec<&RunResult>| over(g, |r| r.quant_loss);
    let f = |g: &Vec<&RunResult>| over(g, |r| r.fp_loss);
    Builder::new("qat_sweep")
        .str("mode", &g, |g| g[0].mode.clone())
        .str("optimizer", &g, |g| g[0].optimizer.clone())
        .f64("lr", &g, |g| g[0].lr)
        .bool("best_lr", &g, |g| is_best(best, g[0]))
        .int("seeds", &g, |g| g.len() as i64)
        .int("diverged", &g, |g| {
            g.iter()
                .filter(|r| r.quant_loss.is_nan() || r.quant_loss > uniform)
                .count() as i64
        })
        .f64("quant_loss", &g, |g| q(g).0)
        .f64("quant_loss_ci_low", &g, |g| q(g).1)
        .f64("quant_loss_ci_high", &g, |g| q(g).2)
        .f64("quant_ppl", &g, |g| q(g).0.exp())
        .f64("fp_loss", &g, |g| f(g).0)
        .f64("fp_loss_ci_low", &g, |g| f(g).1)
        .f64("fp_loss_ci_high", &g, |g| f(g).2)
        .table
}

fn headline(config: &QatConfig, results: &[RunResult], best: &[(String, String, f64)]) -> Table {
    let rot = rotated(config).unwrap_or("none").to_string();
    let g: Vec<Vec<&RunResult>> = groups(results)
        .into_iter()
        .filter(|g| is_best(best, g[0]))
        .collect();
    let last = |r: &RunResult| {
        r.curve
            .last()
            .map(|p| p.outliers.clone())
            .unwrap_or_default()
    };
    let q = |g: &Vec<&RunResult>| over(g, |r| r.quant_loss);
    Builder::new("qat_headline")
        .str("mode", &g, |g| g[0].mode.clone())
        .str("optimizer", &g, |g| g[0].optimizer.clone())
        .f64("best_lr", &g, |g| g[0].lr)
        .int("lrs_swept", &g, |g| {
            config.lrs(&g[0].optimizer).len() as i64
        })
        .int("seeds", &g, |g| g.len() as i64)
        .f64("quant_loss", &g, |g| q(g).0)
        .f64("quant_loss_ci_low", &g, |g| q(g).1)
        .f64("quant_loss_ci_high", &g, |g| q(g).2)
        .f64("quant_ppl", &g, |g| q(g).0.exp())
        .f64("fp_loss", &g, |g| over(g, |r| r.fp_loss).0)
        .f64("quant_gap", &g, |g| over(g, |r| r.quant_loss - r.fp_loss).0)
        .str("rotation", &g, |_| rot.clone())
        .f64("rtn_rotated_loss", &g, |g| {
            over(g, |r| rtn_loss(config, r, &rot)).0
        })
        .f64("kl_start_quant", &g, |g| over(g, |r| r.kl_start_quant).0)
        .f64("act_kurtosis_mean", &g, |g| {
            over(g, |r| last(r).act_kurtosis_mean).0
        })
        .f64("act_kurtosis_max", &g, |g| {
            over(g, |r| last(r).act_kurtosis_max).0
        })
        .f64("weight_kurtosis_mean", &g, |g| {
            over(g, |r| last(r).weight_kurtosis_mean).0
        })
        .f64("act_max_over_median", &g, |g| {
            over(g, |r| last(r).act_max_over_median).0
        })
        .table
}

/// One comparison row: a metric's Muon − AdamW difference, paired by seed.
struct Diff {
    mode: String,
    metric: &'static str,
    pairs: usize,
    mean: f64,
    low: f64,
    high: f64,
    muon_lower: usize,
}

type Metric = (&'static str, fn(&RunResult) -> f64);

fn compare(results: &[RunResult], best: &[(String, String, f64)]) -> Table {
    let metrics: [Metric; 5] = [
        ("quant_loss", |r| r.quant_loss),
        ("fp_loss", |r| r.fp_loss),
        ("quant_gap", |r| r.quant_loss - r.fp_loss),
        ("act_kurtosis_mean", |r| {
            r.curve
                .last()
                .map_or(f64::NAN, |p| p.outliers.act_kurtosis_mean)
        }),
        ("weight_kurtosis_mean", |r| {
            r.curve
                .last()
                .map_or(f64::NAN, |p| p.outliers.weight_kurtosis_mean)
        }),
    ];
    let mut rows = Vec::new();
    let modes = distinct(&results.iter().map(|r| r.mode.clone()).collect::<Vec<_>>());
    for mode in modes {
        let at_best = |opt: &str| -> Vec<&RunResult> {
            results
                .iter()
                .filter(|r| r.mode == mode && r.optimizer == opt && is_best(best, r))
                .collect()
        };
        let (adamw, muon) = (at_best("adamw"), at_best("muon"));
        if adamw.is_empty() || muon.is_empty() {
            continue;
        }
        for (metric, f) in metrics {
            let d: Vec<f64> = muon
                .iter()
                .filter_map(|m| adamw.iter().find(|a| a.seed == m.seed).map(|a| f(m) - f(a)))
                .collect();
            let (mean, low, high) = mean_t_interval(&d);
            rows.push(Diff {
                mode: mode.clone(),
                metric,
                pairs: d.len(),
                mean,
                low,
                high,
                muon_lower: d.iter().filter(|v| **v < 0.0).count(),
            });
        }
    }
    Builder::new("qat_compare")
        .str("mode", &rows, |d| d.mode.clone())
        .str("metric", &rows, |d| d.metric.to_string())
        .int("pairs", &rows, |d| d.pairs as i64)
        .f64("muon_minus_adamw", &rows, |d| d.mean)
        .f64("ci_low", &rows, |d| d.low)
        .f64("ci_high", &rows, |d| d.high)
        .int("seeds_muon_lower", &rows, |d| d.muon_lower as i64)
        .table
}

fn split(groups: &[ParameterGroup]) -> Table {
    Builder::new("qat_split")
        .str("parameter", groups, |g| g.name.clone())
        .str("shape", groups, |g| {
            g.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        })
        .str("group_under_muon", groups, |g| g.muon_group.clone())
        .table
}
