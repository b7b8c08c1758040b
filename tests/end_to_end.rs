//! End-to-end tests of the `workbench` binary: runs, reports, resume after a
//! crash, thread-count independence, and clear errors for bad configs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_workbench"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh temporary folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wb-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("run")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .args(extra)
        .output()
        .unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts two files are byte-identical, showing the first differing line if not.
fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (read(a), read(b));
    if x != y {
        let (sx, sy) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
        let line = sx.lines().zip(sy.lines()).position(|(l, m)| l != m);
        panic!(
            "{} and {} differ ({} vs {} bytes); first differing line: {:?}",
            a.display(),
            b.display(),
            x.len(),
            y.len(),
            line.map(|i| (sx.lines().nth(i), sy.lines().nth(i)))
        );
    }
}

/// Parses a CSV of simple values (no quoted commas) into header and rows.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = String::from_utf8(read(path)).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

const SMALL: &str = r#"
kind = "acceptance"
seed = 7
trials = 20000

[[pairs]]
name = "uniform10"
family = "identical"
vocab = 10

[[pairs]]
name = "dirichlet50"
family = "dirichlet"
vocab = 50
sigma = 0.7

[sweep]
temperatures = [[1.0], [0.5]]
"#;

#[test]
fn quickstart_runs_and_writes_every_output() {
    let dir = scratch("quickstart");
    let out = dir.join("out");
    let o = run(&repo().join("experiments/quickstart.toml"), &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "manifest.json",
        "config.toml",
        "report.html",
        "tables/acceptance.csv",
        "tables/acceptance.parquet",
        "tables/tokens_per_call.csv",
        "tables/speedup.csv",
        "tables/emitted.csv",
        "plots/acceptance_vs_tv.png",
        "plots/acceptance_vs_tv.svg",
        "plots/tokens_per_call.png",
        "plots/emitted_distribution.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let (header, rows) = csv(&out.join("tables/acceptance.csv"));
    for col in [
        "pair",
        "rule",
        "drafts",
        "temperature",
        "tv",
        "exact",
        "estimate",
        "ci_low",
        "ci_high",
        "trials",
    ] {
        assert!(
            header.iter().any(|h| h == col),
            "acceptance.csv lacks {col}"
        );
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // The motivating claim: on identical uniform-10 distributions naive accepts
    // about 1/10, standard and gumbel always.
    let find = |rule: &str| {
        rows.iter()
            .find(|r| r[col("pair")] == "uniform10" && r[col("rule")] == rule)
            .unwrap_or_else(|| panic!("no uniform10/{rule} row"))
    };
    let naive = find("naive");
    let (lo, hi): (f64, f64) = (
        naive[col("ci_low")].parse().unwrap(),
        naive[col("ci_high")].parse().unwrap(),
    );
    assert!(lo < 0.1 && 0.1 < hi, "naive CI [{lo}, {hi}] misses 0.1");
    assert!(
        hi - lo < 0.011,
        "default trials must give a CI of about ±0.005"
    );
    for rule in ["standard", "gumbel"] {
        let row = find(rule);
        assert_eq!(row[col("estimate")].parse::<f64>().unwrap(), 1.0);
        assert!((row[col("exact")].parse::<f64>().unwrap() - 1.0).abs() < 1e-12);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&out.join("manifest.json"))).unwrap();
    for key in [
        "seeds",
        "git",
        "versions",
        "device",
        "threads",
        "wall_seconds",
        "points",
    ] {
        assert!(!manifest[key].is_null(), "manifest lacks {key}");
    }
    let html = String::from_utf8(read(&out.join("report.html"))).unwrap();
    assert!(html.contains("how often is a draft accepted"));
    assert!(html.contains("<svg"));
    assert!(!html.contains("src=\"http"));
}

#[test]
fn tables_are_identical_across_thread_counts() {
    let dir = scratch("threads");
    let config = write_config(&dir, "small.toml", SMALL);
    let one = run(&config, &dir.join("t1"), &["--threads", "1"]);
    let two = run(&config, &dir.join("t2"), &["--threads", "2"]);
    assert!(one.status.success() && two.status.success());
    for name in ["acceptance", "tokens_per_call", "speedup", "emitted"] {
        for ext in ["csv", "parquet"] {
            let f = format!("tables/{name}.{ext}");
            assert_same_file(&dir.join("t1").join(&f), &dir.join("t2").join(&f));
        }
    }
    // The sweep shows as a column and multiplies the rows.
    let (header, rows) = csv(&dir.join("t1/tables/acceptance.csv"));
    assert!(header.contains(&"temperatures".to_string()));
    assert_eq!(rows.len(), 2 * 2 * 5);
    // A different seed changes the Monte-Carlo numbers.
    let other = run(&config, &dir.join("s2"), &["--seed", "8"]);
    assert!(other.status.success());
    assert!(
        read(&dir.join("t1/tables/acceptance.csv")) != read(&dir.join("s2/tables/acceptance.csv"))
    );
}

#[test]
fn a_crashed_run_resumes_without_losing_finished_units() {
    let dir = scratch("resume");
    let config = write_config(&dir, "small.toml", SMALL);
    let crashed = dir.join("crashed");
    let o = bin()
        .args([
            "run",
            config.to_str().unwrap(),
            "--quiet",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&crashed)
        .env("WORKBENCH_ABORT_AFTER_UNITS", "7")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the run should have crashed");
    let units: Vec<PathBuf> = std::fs::read_dir(crashed.join("units"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(units.len(), 7, "exactly the finished units are on disk");
    assert!(!crashed.join("tables/acceptance.csv").exists());
    let before: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> = units
        .iter()
        .map(|p| {
            (
                p.clone(),
                read(p),
                std::fs::metadata(p).unwrap().modified().unwrap(),
            )
        })
        .collect();

    let resumed = run(&config, &crashed, &[]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    for (path, bytes, modified) in before {
        assert!(read(&path) == bytes, "a finished unit was rewritten");
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&crashed.join("manifest.json"))).unwrap();
    assert_eq!(manifest["units"]["reused"], 7);
    assert_eq!(manifest["units"]["total"], 20);

    let fresh = run(&config, &dir.join("fresh"), &[]);
    assert!(fresh.status.success());
    for f in [
        "tables/acceptance.csv",
        "tables/acceptance.parquet",
        "tables/emitted.csv",
    ] {
        assert_same_file(&crashed.join(f), &dir.join("fresh").join(f));
    }
}

#[test]
fn report_rebuilds_from_saved_tables() {
    let dir = scratch("report");
    let config = write_config(&dir, "small.toml", SMALL);
    let out = dir.join("out");
    assert!(run(&config, &out, &[]).status.success());
    let original = read(&out.join("report.html"));
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    let o = bin().arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        read(&out.join("report.html")) == original,
        "the rebuilt report differs"
    );
    assert!(out.join("plots/acceptance_vs_tv.png").is_file());

    let missing = bin()
        .arg("report")
        .arg(dir.join("nothing-here"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("manifest.json"));
}

#[test]
fn list_shows_kinds_and_configs() {
    let o = bin().current_dir(repo()).arg("list").output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("acceptance"));
    assert!(text.contains("quickstart.toml"));
}

/// Runs a bad config and returns its stderr, checking the exit code.
fn rejected(name: &str, text: &str) -> String {
    let dir = scratch(&format!("bad-{name}"));
    let config = write_config(&dir, &format!("{name}.toml"), text);
    let out = dir.join("out");
    let o = run(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{name}: {stderr}");
    assert!(
        !out.join("units").exists(),
        "{name}: work started before validation"
    );
    assert!(
        stderr.contains(&format!("{name}.toml:")),
        "{name}: no file in {stderr}"
    );
    stderr
}

#[test]
fn bad_configs_get_clear_located_errors() {
    let base = "kind = \"acceptance\"\n";
    let pair = "[[pairs]]\nname = \"a\"\np = [0.5, 0.5]\nq = [0.25, 0.75]\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        // (name, text, expected "line:col: key `...`" fragment, expected message fragment)
        (
            "unknown_key",
            format!("{base}trails = 5\n{pair}"),
            ":2:1: key `trails`",
            "unknown field",
        ),
        (
            "wrong_type",
            format!("{base}trials = \"many\"\n{pair}"),
            ":2:1: key `trials`",
            "expected u64",
        ),
        (
            "negative",
            format!("{base}[[pairs]]\nname = \"a\"\np = [0.5, -0.1, 0.6]\nq = [0.2, 0.3, 0.5]\n"),
            ":4:11: key `pairs[0].p[1]`",
            "expected a finite value >= 0",
        ),
        (
            "bad_sum",
            format!("{base}[[pairs]]\nname = \"a\"\np = [0.5, 0.4]\nq = [0.5, 0.5]\n"),
            ":4:1: key `pairs[0].p`",
            "sum of 1 within",
        ),
        (
            "empty_sweep",
            format!("{base}{pair}[sweep]\ntemperatures = []\n"),
            ":7:1: key `sweep.temperatures`",
            "empty sweep list",
        ),
        (
            "unknown_rule",
            format!("{base}rules = [\"standard\", \"magic\"]\n{pair}"),
            ":2:22: key `rules[1]`",
            "unknown rule `magic`",
        ),
        (
            "unknown_kind",
            "kind = \"acceptence\"\n".to_string(),
            ":1:1: key `kind`",
            "unknown study kind",
        ),
        (
            "missing_kind",
            pair.to_string(),
            "key `(top level)`",
            "missing `kind`",
        ),
        (
            "syntax",
            format!("{base}trials = [1, 2\n"),
            ":",
            "invalid TOML",
        ),
        (
            "sweep_type",
            format!("{base}{pair}[sweep]\ntemperatures = [[1.0], [\"hot\"]]\n"),
            "set by sweep.temperatures[1]",
            "expected f64",
        ),
        (
            "no_pairs",
            base.to_string(),
            "key `pairs`",
            "at least one [[pairs]]",
        ),
        (
            "wrong_family_key",
            format!("{base}[[pairs]]\nname = \"z\"\nfamily = \"zipf\"\nvocab = 10\nsigma = 0.5\n"),
            ":6:1: key `pairs[0].sigma`",
            "does not apply to family `zipf`",
        ),
    ];
    for (name, text, location, message) in cases {
        let stderr = rejected(name, &text);
        assert!(
            stderr.contains(location),
            "{name}: expected `{location}` in:\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: expected `{message}` in:\n{stderr}"
        );
    }
}
