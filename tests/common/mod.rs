//! Helpers shared by the end-to-end tests that need the offline data mirror.
//! Each test binary uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The offline mirror beside the checkout, if it holds stories260K.
pub fn mirror() -> Option<PathBuf> {
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    if m.join("stories260K/stories260K.bin").is_file() {
        Some(m)
    } else {
        eprintln!("skipping: no offline mirror at {}", m.display());
        None
    }
}

/// The workbench binary with its data cache at `data`.
pub fn workbench(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_workbench"));
    c.env("WORKBENCH_DATA_DIR", data);
    c
}

/// A temporary folder whose data cache holds stories260K (fetched from the
/// mirror), or `None` without a mirror.
pub fn with_stories260k(label: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let mirror = mirror()?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("wb-{label}-"))
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let o = workbench(&data)
        .args(["data", "fetch", "stories260K", "--mirror"])
        .arg(&mirror)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some((dir, data))
}

/// Runs `config_text` as a config in `dir` and returns the output folder.
pub fn run_config(dir: &Path, data: &Path, name: &str, config_text: &str) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, config_text).unwrap();
    let out = dir.join(format!("{name}-out"));
    let o = workbench(data)
        .args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Runs `workbench run` on a config that must be rejected; returns its stderr.
pub fn rejected_config(data: &Path, config: &Path) -> String {
    let o = workbench(data)
        .args(["run", config.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{} was accepted", config.display());
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub mod speculation;
