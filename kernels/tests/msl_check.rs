//! The Metal sources checked without a Metal compiler. No Apple machine
//! exists here, so the MSL of `src/metal/` is compiled as C++ by the host
//! compiler (`$CXX`, default `c++`) against a stand-in for `<metal_stdlib>`
//! (`tests/msl/metal_stdlib`): every kernel, with `common.metal` prepended
//! as the Rust side does, must parse and type-check, its templates
//! instantiated by the sources' own explicit instantiations. The scalar
//! functions of `common.metal` (Philox, the exact Gumbel noise, its log, the
//! tie rule) are then run on the host and compared bit for bit with the Rust
//! reference that the CPU and CUDA paths match: on chosen and random inputs,
//! and the noise on every 251st of the 2^32 inputs (all of them with
//! `WB_MSL_EXHAUSTIVE=1`).
//!
//! What this does not check: Metal's own rules (address spaces, attributes,
//! which C++ Metal accepts), simdgroup and threadgroup semantics, and the
//! kernels' results. Those need `cargo test -p wb-kernels --features metal
//! --test gpu_parity` on a Mac. Without a C++ compiler the tests fail unless
//! `WB_SKIP_MSL_CHECK=1` is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rayon::prelude::*;
use wb_kernels::philox::philox4x32_10;
use wb_kernels::sample::noise;

const MODULES: [&str; 5] = [
    "hadamard",
    "rotate_quantize",
    "channel_stats",
    "gemm",
    "gumbel_sample",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host C++ compiler, or None when the check is explicitly skipped.
fn cxx() -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let found = Command::new(&cxx)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(cxx);
    }
    if std::env::var("WB_SKIP_MSL_CHECK").as_deref() == Ok("1") {
        eprintln!("msl_check: no C++ compiler ({cxx}); skipped (WB_SKIP_MSL_CHECK=1)");
        return None;
    }
    panic!("msl_check: no C++ compiler found as `{cxx}` (set CXX, or WB_SKIP_MSL_CHECK=1 to skip)");
}

/// `src` without its `[[...]]` attribute specifiers (buffer indices, host
/// names): the host compiler would only warn about them, but the stand-in
/// erases the `threadgroup` keyword, which would leave `[[(0)]]` behind.
/// In C++ `[[` can only open an attribute, so no array index is touched.
fn strip_attributes(src: &str) -> String {
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

fn scratch_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wb-msl-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metal_sources_compile_as_cpp() {
    let Some(cxx) = cxx() else { return };
    let metal = crate_dir().join("src/metal");
    let common = std::fs::read_to_string(metal.join("common.metal")).unwrap();
    for m in MODULES {
        let src = std::fs::read_to_string(metal.join(format!("{m}.metal"))).unwrap();
        let file = scratch_file(&format!("{m}.cpp"));
        std::fs::write(&file, strip_attributes(&format!("{common}\n{src}"))).unwrap();
        run_checked(
            Command::new(&cxx)
                .args(["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"])
                .arg("-Wno-unused-parameter")
                .arg("-I")
                .arg(crate_dir().join("tests/msl"))
                .args(["-x", "c++"])
                .arg(&file),
            &format!("src/metal/{m}.metal as C++"),
        );
    }
}

/// Queries for the driver and the answers the Rust reference gives.
fn queries() -> (String, Vec<String>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u32
    };
    let (mut q, mut want) = (String::new(), Vec::new());
    for _ in 0..2000 {
        let (c, k) = ([next(), next(), next(), next()], [next(), next()]);
        let r = philox4x32_10(c, k);
        q += &format!(
            "p {:x} {:x} {:x} {:x} {:x} {:x}\n",
            c[0], c[1], c[2], c[3], k[0], k[1]
        );
        want.push(format!(
            "{:08x} {:08x} {:08x} {:08x}",
            r[0], r[1], r[2], r[3]
        ));
    }
    // Noise inputs: the ends, both sides of the branch at 2^31 and of
    // v = 1/16, and random words.
    let mut xs: Vec<u32> = vec![
        0,
        1,
        2,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0001,
        0xefff_ffff,
        0xf000_0000,
        0xf000_0001,
        0xffff_fffe,
        0xffff_ffff,
    ];
    xs.extend((0..20_000).map(|_| next()));
    xs.extend((0..5_000).map(|_| 0xf000_0000 | (next() >> 4)));
    for &x in &xs {
        q += &format!("g {x:x}\nn {x:x}\n");
        want.push(format!("{:08x}", noise::gumbel_f32(x).to_bits()));
        want.push(format!("{:08x}", noise::neg_log_uniform(x).to_bits()));
    }
    // log over positive normal floats (what the noise feeds it).
    for _ in 0..20_000 {
        let b = 0x0080_0000 + next() % (0x7f80_0000 - 0x0080_0000);
        q += &format!("l {b:x}\n");
        want.push(format!(
            "{:08x}",
            noise::log_f32(f32::from_bits(b)).to_bits()
        ));
    }
    // The tie rule, NaN included.
    let nan = f32::NAN.to_bits();
    for (s, i, t, j) in [
        (1.0f32.to_bits(), 1, 1.0f32.to_bits(), 2),
        (1.0f32.to_bits(), 2, 1.0f32.to_bits(), 1),
        (2.0f32.to_bits(), 5, 1.0f32.to_bits(), 1),
        (nan, 0, 1.0f32.to_bits(), 1),
        (1.0f32.to_bits(), 9, nan, 0),
        (nan, 0, nan, 1),
        ((-0.0f32).to_bits(), 3, 0.0f32.to_bits(), 4),
    ] {
        q += &format!("b {s:x} {i:x} {t:x} {j:x}\n");
        let r = noise::better(f32::from_bits(s), i, f32::from_bits(t), j);
        want.push(format!("{}", r as u8));
    }
    (q, want)
}

#[test]
fn metal_common_functions_match_rust() {
    let Some(cxx) = cxx() else { return };
    let exe = build_driver(&cxx, "common_driver");
    let (q, want) = queries();
    let got = run_driver(&exe, &q);
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(
        got.len(),
        want.len(),
        "driver answered {} of {} queries",
        got.len(),
        want.len()
    );
    let queries: Vec<&str> = q.lines().collect();
    let wrong: Vec<String> = (0..want.len())
        .filter(|&i| got[i] != want[i])
        .take(5)
        .map(|i| format!("{}: MSL {} Rust {}", queries[i], got[i], want[i]))
        .collect();
    assert!(
        wrong.is_empty(),
        "common.metal differs from the Rust reference:\n{}",
        wrong.join("\n")
    );
}

/// The driver's chunk hash (`G` in `common_driver.cpp`) of the Rust noise.
fn gumbel_chunk_hash(c: u32, stride: u64) -> u64 {
    let mut h = u64::from(c);
    let mut x = u64::from(c) << 24;
    while x < (u64::from(c) + 1) << 24 {
        h = h
            .wrapping_mul(0x100_0000_01b3)
            .wrapping_add(u64::from(noise::gumbel_f32(x as u32).to_bits()));
        x += stride;
    }
    h
}

/// The noise of `common.metal` against the Rust reference over inputs
/// spread across all 2^32 (every 251st: 17 M), by hashes of 256 chunks;
/// `WB_MSL_EXHAUSTIVE=1` takes every input (minutes).
#[test]
fn metal_noise_matches_rust_across_the_range() {
    let Some(cxx) = cxx() else { return };
    let exe = build_driver(&cxx, "common_driver_range");
    let stride: u64 = if std::env::var("WB_MSL_EXHAUSTIVE").as_deref() == Ok("1") {
        1
    } else {
        251
    };
    let q: String = (0..256u32)
        .map(|c| format!("G {c:x} {stride:x}\n"))
        .collect();
    let got = run_driver(&exe, &q);
    let want: Vec<String> = (0..256u32)
        .into_par_iter()
        .map(|c| format!("{:016x}", gumbel_chunk_hash(c, stride)))
        .collect();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), 256);
    let wrong: Vec<String> = (0..256)
        .filter(|&c| got[c] != want[c])
        .map(|c| {
            format!(
                "inputs {:#010x}..: MSL {} Rust {}",
                c << 24,
                got[c],
                want[c]
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "common.metal's noise differs from the Rust reference (stride {stride}) in {} chunks:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    eprintln!("msl_check: 256 chunks, stride {stride}: noise identical");
}

fn build_driver(cxx: &str, name: &str) -> PathBuf {
    let exe = scratch_file(name);
    run_checked(
        Command::new(cxx)
            // IEEE single precision with no contraction, as Metal with fast
            // math off (common.metal spells out every fma).
            .args(["-std=c++17", "-O2", "-ffp-contract=off"])
            .arg("-I")
            .arg(crate_dir().join("tests/msl"))
            .arg("-I")
            .arg(crate_dir().join("src/metal"))
            .arg(crate_dir().join("tests/msl/common_driver.cpp"))
            .arg("-o")
            .arg(&exe),
        "building tests/msl/common_driver.cpp",
    );
    exe
}

fn run_driver(exe: &Path, input: &str) -> String {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the driver");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "driver exited with {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}
