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
//! `WB_MSL_EXHAUSTIVE=1`); so are the stand-in's 16-bit float conversions
//! (`half`, `bfloat`: 16 bits of storage, rounded to nearest even), against
//! the `half` crate the CPU uses, which `tests/msl_group_check.rs` relies on.
//!
//! The kernels themselves run in `tests/msl_group_check.rs`, with
//! threadgroup and simdgroup semantics emulated on the host, dispatched by
//! the plans of `src/metal_plan/` that the Metal backend executes, against
//! the CPU.
//!
//! What neither checks: Metal's compiler and its own rules (address spaces,
//! attributes, which C++ Metal accepts), the Metal executor loop of
//! `src/metal/mod.rs` (compiled for `aarch64-apple-darwin` in CI, never
//! run), and what the emulator cannot model (see
//! `tests/msl_group_check.rs`). Those need `cargo test -p wb-kernels
//! --features metal --test gpu_parity` on a Mac. Without a C++ compiler the
//! tests fail unless `WB_SKIP_MSL_CHECK=1` is set.

#[path = "msl/host.rs"]
mod host;

use std::path::{Path, PathBuf};
use std::process::Command;

use half::{bf16, f16};
use rayon::prelude::*;
use wb_kernels::philox::philox4x32_10;
use wb_kernels::sample::{bound, noise};

use host::{crate_dir, cxx, host_compiler, run_checked, scratch_file, strip_attributes, xorshift};

const MODULES: [&str; 5] = [
    "hadamard",
    "rotate_quantize",
    "channel_stats",
    "gemm",
    "gumbel_sample",
];

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
    let mut words = xorshift(0x9E37_79B9_7F4A_7C15u64);
    let mut next = move || words() as u32;
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
    // The bound table's buckets, and its layout: (upper, lower) per bucket.
    for &x in xs
        .iter()
        .chain(&[0xfdff_ffff, 0xfe00_0000, 0xfe00_7fff, 0xfe00_8000])
    {
        q += &format!("k {x:x}\n");
        want.push(bound::bucket(x).to_string());
    }
    let table = bound::bucket_table();
    assert!(
        table.chunks(2).all(|b| b[0] >= b[1]),
        "bucket_table is not (upper, lower) per bucket, as common.metal reads it"
    );
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
    // The stand-in's 16-bit floats against the `half` crate the CPU uses:
    // every half and bfloat widened, and floats rounded to both (the ends of
    // the ranges, subnormals, ties, NaN, random bits).
    for h in 0..=u16::MAX {
        q += &format!("w {h:x}\nW {h:x}\n");
        want.push(format!("{:08x}", f16::from_bits(h).to_f32().to_bits()));
        want.push(format!("{:08x}", bf16::from_bits(h).to_f32().to_bits()));
    }
    let mut fs: Vec<u32> = vec![
        0,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0x7f80_0001,
        0xffa0_1234,
        0x477f_e000, // 65504, the largest half
        0x477f_efff,
        0x477f_f000, // halfway to 65536: ties to even, infinity
        0x477f_f001,
        0x3380_0000, // 2^-24, the smallest half subnormal
        0x3300_0000, // 2^-25: a tie, to 0
        0x3300_0001,
        0x3340_0000, // 1.5 · 2^-24: a tie, to 2^-23
        0x3880_0000, // 2^-14, the smallest normal half
        0x387f_c000,
        0x387f_e000,
        0x7f7f_ffff,
        0x3f80_8000, // a bfloat tie, to even
        0x3f81_8000,
        0x0000_0001,
    ];
    fs.extend((0..20_000).map(|_| next()));
    fs.extend((0..20_000).map(|_| (next() & 0x8fff_ffff) | 0x3000_0000));
    for &x in &fs {
        q += &format!("h {x:x}\nH {x:x}\n");
        want.push(format!(
            "{:04x}",
            f16::from_f32(f32::from_bits(x)).to_bits()
        ));
        want.push(format!(
            "{:04x}",
            bf16::from_f32(f32::from_bits(x)).to_bits()
        ));
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
        host_compiler(cxx)
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
    let out = host::run_program(exe, input.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).unwrap()
}
