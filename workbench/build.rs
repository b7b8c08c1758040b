//! Records, at build time, what the manifest of every run reports about the code:
//! the versions of key crates (from Cargo.lock), rustc's version and the git revision.

use std::process::Command;

const CRATES: [&str; 12] = [
    "polars",
    "plotters",
    "rayon",
    "clap",
    "serde",
    "toml",
    "minijinja",
    "indicatif",
    "statrs",
    "rand_distr",
    "serde_json",
    "wb-kernels",
];

fn main() {
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if CRATES.contains(&n.as_str()) {
                versions.push(format!("{n}={}", v.trim_matches('"')));
            }
        }
    }
    versions.sort();
    versions.dedup();
    println!("cargo:rustc-env=WB_CRATE_VERSIONS={}", versions.join(","));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=WB_RUSTC_VERSION={}", rustc_version.trim());
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WB_BUILD_GIT_REVISION={}", revision.trim());
}
