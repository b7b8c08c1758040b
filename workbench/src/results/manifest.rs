//! What every run records about itself besides its tables: the code, the machine
//! and the versions that produced them.

use std::process::Command;

use serde_json::{json, Map, Value};

/// The workbench's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Git revision of the source tree, asked of git at run time (with a `-dirty`
/// suffix when there are uncommitted changes to tracked files), falling back to
/// the revision recorded when the binary was built.
pub fn git_revision() -> Value {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(source)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.trim().is_empty())
                .unwrap_or(false);
            json!({"revision": rev.trim(), "dirty": dirty, "source": "git at run time"})
        }
        None => json!({
            "revision": env!("WB_BUILD_GIT_REVISION"),
            "dirty": Value::Null,
            "source": "recorded at build time"
        }),
    }
}

/// Versions of the crates that shape the results, and of rustc.
pub fn versions() -> Value {
    let mut crates = Map::new();
    crates.insert("workbench".into(), VERSION.into());
    for entry in env!("WB_CRATE_VERSIONS")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        if let Some((name, version)) = entry.split_once('=') {
            crates.insert(name.into(), version.into());
        }
    }
    json!({"crates": crates, "rustc": env!("WB_RUSTC_VERSION")})
}

/// The device the run used: for CPU runs, the processor model and core count.
pub fn device(threads: usize) -> Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    json!({
        "kind": "cpu",
        "model": model,
        "logical_cores": cores,
        "threads": threads,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
