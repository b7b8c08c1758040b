//! What the gemm_schedule report says, from the saved tables: speedup of each
//! schedule over row-major against M (CPU, and the GPU run's if present),
//! the GPU's L2 hit rate per schedule, and int8 against the float path.

use anyhow::Result;

use crate::experiment::outputs::{
    distinct, find_table, Figure, Point, ReportContent, Scale, Section, Series, SeriesStyle, Table,
    TableView,
};

/// Geometric mean.
fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// Speedup-over-row-major series against `x` (M or size) for rows passing
/// `keep`, one per schedule, each point the geometric mean over the shapes.
fn speedup_series(
    schedules: &[String],
    sched: &[String],
    xs: &[f64],
    speedup: &[Option<f64>],
    keep: &dyn Fn(usize) -> bool,
) -> Vec<Series> {
    let mut out = Vec::new();
    for s in schedules.iter().filter(|s| *s != "row_major") {
        let mut pts = Vec::new();
        for x in distinct(xs) {
            let v: Vec<f64> = (0..xs.len())
                .filter(|&i| keep(i) && sched[i] == *s && xs[i] == x)
                .filter_map(|i| speedup[i])
                .collect();
            if !v.is_empty() {
                pts.push(Point::new(x, geomean(&v)));
            }
        }
        pts.sort_by(|a, b| a.x.total_cmp(&b.x));
        if !pts.is_empty() {
            out.push(Series {
                name: s.clone(),
                group: Some(s.clone()),
                style: SeriesStyle::LineMarkers,
                points: pts,
            });
        }
    }
    out
}

fn figure(name: &str, title: &str, x_label: &str, series: Vec<Series>, caption: &str) -> Figure {
    Figure {
        name: name.into(),
        title: title.into(),
        x_label: x_label.into(),
        y_label: "speedup over row-major (geometric mean over shapes)".into(),
        x_scale: Scale::Log,
        y_scale: Scale::Linear,
        y_range: None,
        series,
        caption: caption.into(),
    }
}

/// Summary lines "schedule: geo-mean speedup" over rows passing `keep`.
fn summary(sched: &[String], speedup: &[Option<f64>], keep: &dyn Fn(usize) -> bool) -> String {
    distinct(sched)
        .iter()
        .filter(|s| *s != "row_major" && *s != "candle_f32")
        .filter_map(|s| {
            let v: Vec<f64> = (0..sched.len())
                .filter(|&i| keep(i) && sched[i] == *s)
                .filter_map(|i| speedup[i])
                .collect();
            (!v.is_empty()).then(|| format!("{s} {:.3}×", geomean(&v)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the report content of a gemm_schedule run.
pub fn content(tables: &[Table], _manifest: &serde_json::Value) -> Result<ReportContent> {
    let cpu = find_table(tables, "gemm_schedule_cpu")?;
    let set = cpu.texts("set")?;
    let variant = cpu.texts("variant")?;
    let m = cpu.floats("m")?;
    let n_ = cpu.floats("n")?;
    let speedup = cpu.f64s("speedup_vs_row_major").unwrap_or_default();
    let vs_f32 = cpu.f64s("speedup_vs_candle_f32").unwrap_or_default();
    let gops = cpu.floats("gop_per_s")?;
    let identical = cpu.bools("identical_results").unwrap_or(&[]);
    let threads = cpu.floats("threads")?;
    let rows = set.len();
    let schedules: Vec<String> = distinct(&variant)
        .into_iter()
        .filter(|v| v != "candle_f32")
        .collect();

    let mut findings = Vec::new();
    // One row_major row per shape.
    let base_rows: Vec<usize> = (0..rows).filter(|&i| variant[i] == "row_major").collect();
    let same = base_rows
        .iter()
        .filter(|&&i| identical.get(i) == Some(&Some(true)))
        .count();
    findings.push(format!(
        "Correctness: every schedule gave the same int32 result as row-major, and row-major the plain reference's on the checked rows, in {same} of {} shapes.{}",
        base_rows.len(),
        if same == base_rows.len() { "" } else { " SOME DIFFER: see identical_results." }
    ));
    let thr = threads.first().copied().unwrap_or(0.0);
    let is_model = |i: usize| set[i] == "model";
    let small = |i: usize| set[i] == "model" && m[i] <= 16.0;
    let large = |i: usize| set[i] == "model" && m[i] >= 128.0;
    let sq = |i: usize| set[i] == "square";
    for (label, keep) in [
        (
            "verification shapes (M ≤ 16)",
            &small as &dyn Fn(usize) -> bool,
        ),
        ("prefill shapes (M ≥ 128)", &large),
        ("squares", &sq),
    ] {
        let s = summary(&variant, &speedup, keep);
        if !s.is_empty() {
            findings.push(format!(
                "CPU ({thr} threads), {label}: geometric-mean speedup over row-major: {s}."
            ));
        }
    }
    let int8_vs_f32: Vec<f64> = (0..rows)
        .filter(|&i| variant[i] == "row_major")
        .filter_map(|i| vs_f32.get(i).copied().flatten())
        .collect();
    if !int8_vs_f32.is_empty() {
        let best = (0..rows)
            .filter(|&i| variant[i] != "candle_f32")
            .map(|i| gops[i])
            .fold(0.0, f64::max);
        findings.push(format!(
            "CPU int8 (row-major) against candle's f32 matmul on the same shapes: geometric mean {:.2}× (range {:.2}–{:.2}); best int8 rate {best:.1} GOP/s.",
            geomean(&int8_vs_f32),
            int8_vs_f32.iter().cloned().fold(f64::INFINITY, f64::min),
            int8_vs_f32.iter().cloned().fold(0.0, f64::max),
        ));
    }
    findings.push(
        "CPU cache misses are not measured: the study reads no hardware counters, and the machine this was built on exposes no CPU PMU to perf (only software events).".into(),
    );

    let mut figures = vec![figure(
        "cpu_speedup_vs_m",
        "CPU: tile order against row-major, model weight shapes",
        "M (rows of A)",
        speedup_series(&schedules, &variant, &m, &speedup, &is_model),
        "Each point: geometric mean over the configured models' weight shapes of the median paired speedup (per-shape intervals in gemm_schedule_cpu).",
    )];
    if (0..rows).any(sq) {
        figures.push(figure(
            "cpu_speedup_squares",
            "CPU: tile order against row-major, squares",
            "M = N = K",
            speedup_series(&schedules, &variant, &n_, &speedup, &sq),
            "Median paired speedup over row-major per square size.",
        ));
    }
    let mut sections = vec![Section {
        heading: "CPU".into(),
        paragraphs: vec![format!(
            "Workers ({thr} threads) take tiles in schedule order from one shared counter, as a GPU dispatches blocks. Times are medians per call over the repetitions, with an order-statistic interval (coverage in ci_coverage); speedups are medians of per-repetition paired ratios."
        )],
        tables: vec![TableView {
            caption: "Per shape and variant.".into(),
            table: cpu.clone(),
            max_rows: Some(60),
            digits: 3,
        }],
        figures: figures.iter().map(|f| f.name.clone()).collect(),
    }];

    if let Ok(g) = find_table(tables, "gemm_schedule_gpu_times") {
        let card = g.texts("card")?.first().cloned().unwrap_or_default();
        let gset = g.texts("set")?;
        let gk = g.texts("kernel")?;
        let gs = g.texts("schedule")?;
        let gm = g.floats("m")?;
        let gn = g.floats("n")?;
        // Paired per-batch ratios where the CSV has them (interleaved timing).
        let gsp = g
            .f64s("speedup_paired")
            .or_else(|| g.f64s("speedup_vs_row_major"))
            .unwrap_or_default();
        let tops = g.floats("tops")?;
        let ours = |i: usize| gk[i] == "gemm_w8a8";
        let gsmall = |i: usize| ours(i) && gset[i] == "model" && gm[i] <= 16.0;
        let glarge = |i: usize| ours(i) && gset[i] == "model" && gm[i] >= 128.0;
        let gbig = |i: usize| ours(i) && gset[i] == "square" && gm[i] >= 8192.0;
        for (label, keep) in [
            (
                "verification shapes (M ≤ 16)",
                &gsmall as &dyn Fn(usize) -> bool,
            ),
            ("prefill shapes (M ≥ 128)", &glarge),
            ("squares ≥ 8192", &gbig),
        ] {
            let s = summary(&gs, &gsp, keep);
            if !s.is_empty() {
                findings.push(format!(
                    "{card}, {label}: geometric-mean speedup over row-major: {s}."
                ));
            }
        }
        let best = (0..gk.len())
            .filter(|&i| ours(i))
            .map(|i| tops[i])
            .fold(0.0, f64::max);
        let bf16 = (0..gk.len())
            .filter(|&i| gk[i] != "gemm_w8a8")
            .map(|i| tops[i])
            .fold(0.0, f64::max);
        findings.push(format!(
            "{card}: gemm_w8a8 peaks at {best:.0} int8 TOP/s; candle's bf16 matmul (cuBLAS) reaches {bf16:.0} TFLOP/s in the same run."
        ));
        let gmodel = |i: usize| ours(i) && gset[i] == "model";
        let gsq = |i: usize| ours(i) && gset[i] == "square";
        let mut gfig = vec![figure(
            "gpu_speedup_vs_m",
            &format!("{card}: tile order against row-major, model weight shapes"),
            "M (rows of A)",
            speedup_series(&schedules, &gs, &gm, &gsp, &gmodel),
            "Geometric mean over the weight shapes of the median paired speedup (schedules interleaved batch by batch, run_gemm.sh).",
        )];
        gfig.push(figure(
            "gpu_speedup_squares",
            &format!("{card}: tile order against row-major, squares"),
            "M = N = K",
            speedup_series(&schedules, &gs, &gn, &gsp, &gsq),
            "Median paired speedup; 128×128 and 256×128 tiles pooled (geometric mean).",
        ));
        let mut tables_v = vec![TableView {
            caption: format!("{card}: times per schedule and shape (gemm_gpu.csv)."),
            table: g.clone(),
            max_rows: Some(40),
            digits: 3,
        }];
        if let Ok(l2) = find_table(tables, "gemm_schedule_gpu_l2") {
            let shape = l2.texts("shape")?;
            let lm = l2.floats("m")?;
            let ls = l2.texts("schedule")?;
            let hit = l2.floats("l2_hit_pct")?;
            let dram = l2.floats("dram_over_min")?;
            let order: Vec<String> = distinct(&ls);
            let mut series = Vec::new();
            for (sh, mm) in distinct(
                &shape
                    .iter()
                    .cloned()
                    .zip(lm.iter().map(|v| *v as i64))
                    .collect::<Vec<_>>(),
            ) {
                let pts: Vec<Point> = (0..shape.len())
                    .filter(|&i| shape[i] == sh && lm[i] as i64 == mm)
                    .map(|i| {
                        let x = order.iter().position(|o| *o == ls[i]).unwrap_or(0) as f64 + 1.0;
                        Point::new(x, hit[i])
                    })
                    .collect();
                series.push(Series {
                    name: format!("{sh}, M={mm}"),
                    group: None,
                    style: SeriesStyle::LineMarkers,
                    points: pts,
                });
                let line: Vec<String> = (0..shape.len())
                    .filter(|&i| shape[i] == sh && lm[i] as i64 == mm)
                    .map(|i| format!("{} {:.1}% ({:.1}× min DRAM)", ls[i], hit[i], dram[i]))
                    .collect();
                findings.push(format!(
                    "{card} L2 hit rate, {sh} M={mm}: {}.",
                    line.join(", ")
                ));
            }
            gfig.push(Figure {
                name: "gpu_l2_hit_rate".into(),
                title: format!("{card}: L2 hit rate against schedule (Nsight Compute)"),
                x_label: format!(
                    "schedule: {}",
                    order
                        .iter()
                        .enumerate()
                        .map(|(i, o)| format!("{} = {o}", i + 1))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                y_label: "lts__t_sector_hit_rate (%)".into(),
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                y_range: Some((0.0, 100.0)),
                series,
                caption: "One launch per schedule under ncu (caches flushed before each replay)."
                    .into(),
            });
            tables_v.push(TableView {
                caption: format!(
                    "{card}: L2 hit rate and DRAM bytes read over the minimum (A and B once)."
                ),
                table: l2.clone(),
                max_rows: None,
                digits: 3,
            });
        }
        sections.push(Section {
            heading: format!("GPU ({card})"),
            paragraphs: vec![
                "From kernels/gpu/run_gemm.sh: mma.sync int8 tensor-core kernel, one block per tile in schedule order; inputs rotated over copies exceeding 3× L2.".into(),
            ],
            tables: tables_v,
            figures: gfig.iter().map(|f| f.name.clone()).collect(),
        });
        figures.extend(gfig);
    }

    Ok(ReportContent {
        title: "W8A8 GEMM: does the tile order pay?".into(),
        question: "How much does the order of output tiles (row-major, column-major, grouped, Morton, Hilbert) change a W8A8 matrix product's speed, for prefill and for the skinny products of speculative verification?".into(),
        findings,
        sections,
        figures,
    })
}
