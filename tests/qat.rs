//! End-to-end tests of the QAT study on stories260K (from the offline mirror),
//! fine-tuned on its own samples: it runs and learns, its quantized losses agree
//! with the shared quantizers, a run killed between units or inside a training
//! run resumes to the same tables, and tables do not depend on the thread count.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{with_stories260k, workbench};

const CONFIG: &str = r#"kind = "qat"
seed = 4
seeds = [0, 1]
modes = ["finetune_qat", "finetune_fp"]
optimizers = ["adamw", "muon"]
[model]
checkpoint = "stories260K"
[data]
source = "sampled"
sequences = 64
valid_sequences = 8
length = 33
eval_windows = 4
final_windows = 8
stats_windows = 2
[quant]
weights = "w5"
activations = 8
[train]
steps = 16
batch = 4
context = 32
warmup = 1
eval_every = 8
checkpoint_every = 8
[lr]
adamw = [1e-4, 3e-4]
muon = [1e-4, 3e-4]
[eval]
weights = ["w8", "w4"]
rotations = ["none", "hadamard"]
"#;

fn run(dir: &Path, data: &Path, out: &str, threads: usize, env: Option<(&str, &str)>) -> Output {
    let config = dir.join("qat.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut c = workbench(data);
    c.args(["run", config.to_str().unwrap(), "--quiet", "--threads"])
        .arg(threads.to_string())
        .arg("--out")
        .arg(dir.join(out));
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// A CSV as a header and rows of cells.
fn csv(path: PathBuf) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

fn col(t: &(Vec<String>, Vec<Vec<String>>), name: &str) -> Vec<String> {
    let i =
        t.0.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name}"));
    t.1.iter().map(|r| r[i].clone()).collect()
}

fn nums(t: &(Vec<String>, Vec<Vec<String>>), name: &str) -> Vec<f64> {
    col(t, name)
        .iter()
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect()
}

const TABLES: [&str; 7] = [
    "qat_curves",
    "qat_final",
    "qat_ptq",
    "qat_sweep",
    "qat_headline",
    "qat_compare",
    "qat_split",
];

fn same_tables(a: &Path, b: &Path) {
    for t in TABLES {
        let file = format!("tables/{t}.csv");
        assert!(
            std::fs::read(a.join(&file)).unwrap() == std::fs::read(b.join(&file)).unwrap(),
            "{file} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn qat_study_runs_learns_resumes_and_ignores_threads() {
    let Some((dir, data)) = with_stories260k("qat") else {
        return;
    };
    let dir = dir.path();
    let o = run(dir, &data, "two", 2, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("two");
    for t in TABLES {
        assert!(out.join(format!("tables/{t}.parquet")).is_file(), "{t}");
    }
    for p in [
        "ppl_vs_lr",
        "ppl_vs_bits",
        "kurtosis_curves",
        "loss_curves_finetune_qat",
    ] {
        assert!(out.join(format!("plots/{p}.png")).is_file(), "{p}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Park et al. 2025") && report.contains("Vlassis et al. 2025"));

    let finals = csv(out.join("tables/qat_final.csv"));
    assert_eq!(finals.1.len(), 2 * 2 * 2 * 2);
    // One best learning rate per (mode, optimizer), held by both its seeds.
    assert_eq!(
        col(&finals, "best_lr")
            .iter()
            .filter(|b| *b == "true")
            .count(),
        8
    );
    // The trained quantizer measured by fake quantization equals the shared RTN
    // quantizers applied to the final weights (same grid, same bits).
    let (quant, rtn) = (nums(&finals, "quant_loss"), nums(&finals, "rtn_loss"));
    for (q, r) in quant.iter().zip(&rtn) {
        assert!((q - r).abs() < 1e-9, "fake quant {q} vs RTN {r}");
    }
    // Fine-tuning moves away from the start; the fp runs' quantized loss is worse
    // than their full-precision loss.
    for v in nums(&finals, "kl_start_fp") {
        assert!(v > 0.0 && v.is_finite(), "KL to start {v}");
    }
    for (g, m) in nums(&finals, "quant_gap").iter().zip(col(&finals, "mode")) {
        if m == "finetune_fp" {
            assert!(*g > 0.0, "W4A8 should cost something: {g}");
        }
    }

    let curves = csv(out.join("tables/qat_curves.csv"));
    let (step, mode) = (nums(&curves, "step"), col(&curves, "mode"));
    let (qloss, fp) = (nums(&curves, "quant_loss"), nums(&curves, "fp_loss"));
    let (best, optimizer) = (col(&curves, "best_lr"), col(&curves, "optimizer"));
    assert_eq!(curves.1.len(), 16 * 3, "evaluations at steps 0, 8, 16");
    // Every run starts from the same model: identical step-0 losses, and W5A8
    // costs stories260K about a nat.
    let starts: Vec<usize> = (0..step.len()).filter(|&i| step[i] == 0.0).collect();
    assert!(starts
        .iter()
        .all(|&i| fp[i] == fp[0] && qloss[i] == qloss[0]));
    assert!(qloss[0] > fp[0] + 0.5, "{} vs {}", qloss[0], fp[0]);
    // QAT at the best learning rate lowers the quantized loss below the start's,
    // on average over the seeds, for each optimizer.
    for opt in ["adamw", "muon"] {
        let last: Vec<f64> = (0..step.len())
            .filter(|&i| {
                step[i] == 16.0
                    && mode[i] == "finetune_qat"
                    && best[i] == "true"
                    && optimizer[i] == opt
            })
            .map(|i| qloss[i])
            .collect();
        let mean = last.iter().sum::<f64>() / last.len() as f64;
        assert!(
            last.len() == 2 && mean < qloss[0],
            "{opt}: QAT {} -> {last:?}",
            qloss[0]
        );
    }

    // Muon takes exactly the 35 block projections of stories260K.
    let split = csv(out.join("tables/qat_split.csv"));
    assert_eq!(
        col(&split, "group_under_muon")
            .iter()
            .filter(|g| *g == "muon")
            .count(),
        35
    );
    let compare = csv(out.join("tables/qat_compare.csv"));
    assert_eq!(nums(&compare, "pairs"), vec![2.0; compare.1.len()]);

    // One thread: the same tables.
    let o = run(dir, &data, "one", 1, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tables(&out, &dir.join("one"));

    // Killed after three units, then rerun: the same tables, three units reused.
    let o = run(
        dir,
        &data,
        "units",
        1,
        Some(("WORKBENCH_ABORT_AFTER_UNITS", "3")),
    );
    assert!(!o.status.success(), "the run should have aborted");
    let o = run(dir, &data, "units", 1, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read_to_string(dir.join("units/manifest.json")).unwrap();
    assert!(manifest.contains("\"reused\": 3"), "{manifest}");
    same_tables(&out, &dir.join("units"));

    // Killed inside a training run (after its checkpoint at step 4): it resumes
    // from that checkpoint and ends with the same tables.
    let o = run(
        dir,
        &data,
        "steps",
        1,
        Some(("WORKBENCH_ABORT_AFTER_STEPS", "4")),
    );
    assert!(!o.status.success(), "the run should have aborted");
    let work = std::fs::read_dir(dir.join("steps/work")).unwrap().count();
    assert_eq!(work, 1, "one run had started");
    let o = run(dir, &data, "steps", 1, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tables(&out, &dir.join("steps"));
}

#[test]
fn bad_qat_configs_are_located() {
    let Some((dir, data)) = with_stories260k("qat-bad") else {
        return;
    };
    let bad = CONFIG
        .replace("weights = \"w5\"", "weights = \"w4g32\"")
        .replace("muon = [1e-4, 3e-4]", "muon = [3e-4, 1e-4]")
        .replace("activations = 8", "activations = 3")
        .replace("modes = [\"finetune_qat\", ", "modes = [\"qat\", ");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, bad).unwrap();
    let o = workbench(&data)
        .args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for expected in [
        "bad.toml:4:10: key `modes[0]`: unknown `qat`",
        "bad.toml:17:1: key `quant.weights`: group of 32 does not divide",
        "bad.toml:18:1: key `quant.activations`: expected 4 to 8 bits",
        "key `lr.muon[1]`: expected increasing learning rates",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn lsq_runs_learn_their_own_steps() {
    let Some((dir, data)) = with_stories260k("qat-lsq") else {
        return;
    };
    let config = CONFIG
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace(
            "modes = [\"finetune_qat\", \"finetune_fp\"]",
            "modes = [\"finetune_qat\"]",
        )
        .replace("activations = 8", "activations = 8\nlsq = true")
        .replace("adamw = [1e-4, 3e-4]", "adamw = [3e-4]")
        .replace("muon = [1e-4, 3e-4]", "muon = [3e-4]");
    let out = common::run_config(dir.path(), &data, "lsq", &config);
    let finals = csv(out.join("tables/qat_final.csv"));
    let (quant, rtn) = (nums(&finals, "quant_loss"), nums(&finals, "rtn_loss"));
    assert_eq!(quant.len(), 2);
    for (q, r) in quant.iter().zip(&rtn) {
        // Learned steps are no longer the absmax grid the RTN quantizer uses.
        assert!(q.is_finite() && (q - r).abs() > 1e-6, "LSQ {q} vs RTN {r}");
    }
}
