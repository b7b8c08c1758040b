//! End-to-end test of the gemm_schedule study on tiny shapes: every schedule
//! and candle's f32 matmul timed per shape, int32 results identical across
//! schedules and to the reference, the H100 CSVs read beside them, and bad
//! configs rejected with the key named. Needs no data.

mod common;

use std::path::Path;

fn gpu_results() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kernels/gpu/results/gemm-h100")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

fn config(extra: &str) -> String {
    format!(
        "kind = \"gemm_schedule\"\nthreads = 2\nrepeats = 3\nmin_seconds = 0.0\nms = [1, 5, 33]\nsquares = [40]\n\
         tile_m = 8\nsmall_tile_m = 4\ntile_n = 16\ntile_k = 32\n{extra}\n\
         [[models]]\nname = \"toy\"\nhidden = 64\nintermediate = 96\nheads = 2\nkv_heads = 1\nhead_dim = 32\n"
    )
}

#[test]
fn tiny_study_times_every_schedule_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gpu = gpu_results();
    let text = config("") + &format!(
        "[gpu]\ncard = \"NVIDIA H100 80GB HBM3\"\ntimes_csv = \"{gpu}/gemm_gpu.csv\"\nl2_csv = \"{gpu}/gemm_l2.csv\"\n"
    );
    let out = common::run_config(dir.path(), &data, "gemm", &text);
    let csv = std::fs::read_to_string(out.join("tables/gemm_schedule_cpu.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // toy: q (64×64), k_v (32×64), o (64×64 → merged with q), gate_up
    // (96×64), down (64×96): 4 shapes × 3 Ms, plus one square; 5 schedules
    // and candle f32 each.
    assert_eq!(rows.len(), (4 * 3 + 1) * 6);
    for r in &rows {
        assert_eq!(r[col("identical_results")], "true", "{r:?}");
        assert_eq!(r[col("repeats")], "3");
        let t: f64 = r[col("median_ms")].parse().unwrap();
        let (lo, hi): (f64, f64) = (
            r[col("ci_low_ms")].parse().unwrap(),
            r[col("ci_high_ms")].parse().unwrap(),
        );
        assert!(t > 0.0 && lo <= t && t <= hi, "{r:?}");
        if r[col("variant")] == "row_major" {
            assert_eq!(r[col("speedup_vs_row_major")].parse::<f64>().unwrap(), 1.0);
            assert!(r[col("speedup_vs_candle_f32")].parse::<f64>().unwrap() > 0.0);
        }
    }
    let variants: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r[col("variant")]).collect();
    for v in [
        "row_major",
        "column_major",
        "grouped8",
        "morton",
        "hilbert",
        "candle_f32",
    ] {
        assert!(variants.contains(v), "{v}");
    }
    for t in ["gemm_schedule_gpu_times", "gemm_schedule_gpu_l2"] {
        assert!(out.join(format!("tables/{t}.csv")).is_file(), "{t}");
    }
    for p in [
        "cpu_speedup_vs_m",
        "cpu_speedup_squares",
        "gpu_speedup_vs_m",
        "gpu_l2_hit_rate",
    ] {
        assert!(out.join(format!("plots/{p}.png")).is_file(), "{p}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("L2 hit rate") && report.contains("speedup over row-major"));
}

#[test]
fn bad_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (extra, key, what) in [
        ("schedules = [\"zigzag\"]", "schedules", "zigzag"),
        ("tile_k = 10\n", "tile_k", "multiple of 16"),
        (
            "[gpu]\ncard = \"x\"\ntimes_csv = \"nowhere.csv\"",
            "times_csv",
            "does not exist",
        ),
    ] {
        let text = config("").replace("tile_k = 32\n", "") + "";
        let text = if extra.starts_with("[gpu]") {
            format!("{text}{extra}\n")
        } else {
            text.replacen("threads = 2\n", &format!("threads = 2\n{extra}\n"), 1)
        };
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = common::rejected_config(&data, &path);
        assert!(err.contains(key) && err.contains(what), "{key}: {err}");
    }
}
