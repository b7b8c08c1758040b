//! What the two host checks of the Metal sources share (`tests/msl_check.rs`,
//! `tests/msl_group_check.rs`): the host C++ compiler, the sources' text as
//! C++, scratch files and a seeded input stream.
#![allow(dead_code)] // each test uses a part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Metal source of `src/metal/<module>.metal`.
pub fn metal_source(module: &str) -> String {
    let path = crate_dir().join(format!("src/metal/{module}.metal"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The host C++ compiler, or None when the check is explicitly skipped.
pub fn cxx() -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let found = Command::new(&cxx)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(cxx);
    }
    if std::env::var("WB_SKIP_MSL_CHECK").as_deref() == Ok("1") {
        eprintln!("msl check: no C++ compiler ({cxx}); skipped (WB_SKIP_MSL_CHECK=1)");
        return None;
    }
    panic!("msl check: no C++ compiler found as `{cxx}` (set CXX, or WB_SKIP_MSL_CHECK=1 to skip)");
}

/// `src` without its `[[...]]` attribute specifiers (buffer indices, host
/// names): the host compiler would only warn about them, but the stand-in
/// erases the `threadgroup` keyword, which would leave `[[(0)]]` behind.
/// In C++ `[[` can only open an attribute, so no array index is touched.
pub fn strip_attributes(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("[[") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find("]]")
            .unwrap_or_else(|| panic!("unterminated attribute in {:?}", &rest[i..]));
        rest = &rest[i + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A seeded xorshift64 stream (inputs only; nothing statistical).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

pub fn scratch_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wb-msl-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

pub fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host compiler set up for the MSL: the stand-in `<metal_stdlib>`, and
/// IEEE single precision with nothing contracted, as Metal with fast math
/// off (common.metal spells out every fma); `char` signed, as in Metal.
pub fn host_compiler(cxx: &str) -> Command {
    let mut c = Command::new(cxx);
    c.args(["-std=c++17", "-O2", "-ffp-contract=off", "-fsigned-char"])
        .arg("-I")
        .arg(crate_dir().join("tests/msl"));
    c
}

/// Runs `exe` with `input` on stdin: its stdout, or its stderr and exit
/// status when it fails.
pub fn run_program(exe: &Path, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    // A program that stops early closes its stdin: what it says matters more.
    let written = writer.join().unwrap();
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    written.unwrap();
    Ok(out.stdout)
}
