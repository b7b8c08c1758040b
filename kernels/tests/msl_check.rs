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
//! `WB_MSL_EXHAUSTIVE=1`). Last, the kernels that a host can run run there:
//! the sampler's, one thread a threadgroup, must give the CPU's tokens and
//! scores; those whose threads work alone (`channel_stats`, `dequantize_*`)
//! the CPU's results.
//!
//! What this does not check: Metal's own rules (address spaces, attributes,
//! which C++ Metal accepts), simdgroup and threadgroup semantics, and the
//! kernels' results. Those need `cargo test -p wb-kernels --features metal
//! --test gpu_parity` on a Mac. Without a C++ compiler the tests fail unless
//! `WB_SKIP_MSL_CHECK=1` is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use wb_kernels::philox::philox4x32_10;
use wb_kernels::quant::{dequantize, Bits, QuantConfig};
use wb_kernels::sample::{bound, noise, GumbelSampler};

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

/// A seeded xorshift64 stream (inputs only; nothing statistical).
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
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

/// One host run of gumbel_sample.metal (tests/msl/sampler_harness.cpp):
/// tokens and score bits of each row.
#[allow(clippy::too_many_arguments)]
fn metal_sample_on_host(
    exe: &Path,
    g: &GumbelSampler,
    logits: &[f32],
    batch: usize,
    vocab: usize,
    chunk: usize,
    positions: &[u64],
) -> Vec<(u32, u32)> {
    let mut q = format!(
        "{batch} {vocab} {chunk} {:x} {:x} {:x} {:x} {}\n",
        g.seed as u32,
        (g.seed >> 32) as u32,
        g.stream,
        g.inv_temperature().to_bits(),
        g.top_k.unwrap_or(0)
    );
    for p in positions {
        q += &format!("{p:x}\n");
    }
    for v in logits.iter().chain(bound::bucket_table().iter()) {
        q += &format!("{:x}\n", v.to_bits());
    }
    run_driver(exe, &q)
        .lines()
        .map(|l| {
            let (t, s) = l.split_once(' ').expect("token and score");
            (t.parse().unwrap(), u32::from_str_radix(s, 16).unwrap())
        })
        .collect()
}

/// gumbel_sample.metal's kernels, run on the host one thread a threadgroup
/// (so the bucket-bound filter and the exact scores of each chunk run in
/// order in one thread, and the chunks meet in gumbel_finish), give the
/// CPU sampler's tokens and score bits: ties, NaN logits, infinities,
/// temperatures, top-k, chunk edges and vocabularies off a multiple of 4.
#[test]
fn metal_sampler_on_the_host_matches_cpu() {
    let Some(cxx) = cxx() else { return };
    let exe = build_harness(&cxx, &["gumbel_sample"], "sampler_harness");
    let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
    let mut cases = 0;
    for (case, (batch, vocab, chunk)) in [
        (3, 20_000, 8192),
        (2, 131_071, 8192),
        (4, 1_003, 64),
        (1, 7, 8192),
        (5, 4_096, 100),
    ]
    .into_iter()
    .enumerate()
    {
        let mut logits: Vec<f32> = (0..batch * vocab)
            .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0)
            .collect();
        if case % 2 == 1 {
            // Ties, NaNs and infinities.
            for (i, v) in logits.iter_mut().enumerate() {
                match next() % 97 {
                    0 => *v = f32::NAN,
                    1 => *v = 3.0,
                    2 => *v = f32::NEG_INFINITY,
                    3 if i % 5 == 0 => *v = 1e30,
                    _ => {}
                }
            }
        }
        let positions: Vec<u64> = (0..batch).map(|_| next() >> (next() % 64)).collect();
        let x = Tensor::from_slice(&logits, (batch, vocab), &Device::Cpu).unwrap();
        for (temperature, top_k) in [(1.0f32, None), (0.7, None), (2.5, Some(50)), (1.0, Some(1))] {
            let g = GumbelSampler {
                seed: next(),
                stream: next() as u32,
                temperature,
                top_k,
            };
            let want = g.sample(&x, &positions).unwrap();
            let tw: Vec<u32> = want.tokens.to_vec1().unwrap();
            let sw: Vec<u32> = want
                .scores
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let got = metal_sample_on_host(&exe, &g, &logits, batch, vocab, chunk, &positions);
            let want: Vec<(u32, u32)> = tw.into_iter().zip(sw).collect();
            assert_eq!(got, want, "[{batch}, {vocab}] chunk {chunk} {g:?}");
            cases += 1;
        }
    }
    eprintln!("msl_check: Metal sampler on the host = CPU in {cases} cases");
}

/// A host executable of `common.metal`, the given modules (attributes
/// stripped) and `tests/msl/<harness>.cpp`, which calls their kernels.
fn build_harness(cxx: &str, modules: &[&str], harness: &str) -> PathBuf {
    let metal = crate_dir().join("src/metal");
    let mut src = std::fs::read_to_string(metal.join("common.metal")).unwrap();
    for m in modules {
        src += "\n";
        src += &std::fs::read_to_string(metal.join(format!("{m}.metal"))).unwrap();
    }
    src += "\n";
    src += &std::fs::read_to_string(crate_dir().join(format!("tests/msl/{harness}.cpp"))).unwrap();
    let file = scratch_file(&format!("{harness}.cpp"));
    std::fs::write(&file, strip_attributes(&src)).unwrap();
    let exe = scratch_file(harness);
    run_checked(
        host_compiler(cxx)
            .args(["-x", "c++"])
            .arg(&file)
            .arg("-o")
            .arg(&exe),
        &format!(
            "building tests/msl/{harness}.cpp with {}",
            modules.join(", ")
        ),
    );
    exe
}

fn parse_bits(out: &str) -> Vec<f32> {
    out.lines()
        .map(|l| f32::from_bits(u32::from_str_radix(l, 16).unwrap()))
        .collect()
}

/// The Metal kernels whose threads work alone run on the host, one call per
/// grid position, and give the CPU's bits: `channel_stats` (the same
/// updates in the same order, nothing contracted; on a GPU the parity test
/// allows other roundings), `dequantize_8` and `dequantize_4`.
#[test]
fn metal_thread_kernels_on_the_host_match_cpu() {
    let Some(cxx) = cxx() else { return };
    let exe = build_harness(
        &cxx,
        &["channel_stats", "rotate_quantize"],
        "thread_kernels_harness",
    );
    let mut next = xorshift(0x1234_5678_9abc_def1u64);
    let mut unit = move || (next() >> 40) as f32 / (1u64 << 24) as f32;
    for (rows, channels, block) in [(1usize, 1usize, 1usize), (37, 5, 8), (1000, 300, 128)] {
        let mut x: Vec<f32> = (0..rows * channels)
            .map(|i| 10f32.powi((i % channels % 4) as i32) + unit())
            .collect();
        x[rows * channels / 2] = f32::NAN;
        x[0] = 1e4;
        let want: Vec<f32> = wb_kernels::stats::channel_stats(
            &Tensor::from_slice(&x, (rows, channels), &Device::Cpu).unwrap(),
            block,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
        let mut q = format!("S {rows} {channels} {block}\n");
        for v in &x {
            q += &format!("{:x}\n", v.to_bits());
        }
        let got = parse_bits(&run_driver(&exe, &q));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits(),
                "channel_stats [{rows}, {channels}] field {} at {i}: MSL {g} CPU {w}",
                i % 6
            );
        }
    }
    for (bits, n, group) in [
        (Bits::Int8, 64usize, 16usize),
        (Bits::Int4, 64, 32),
        (Bits::Int4, 96, 96),
    ] {
        let rows = 5;
        let cfg = QuantConfig {
            bits,
            group: Some(group),
            clip_ratio: 1.0,
        };
        let codes: Vec<u8> = (0..rows * bits.row_bytes(n))
            .map(|_| next_byte(&mut unit))
            .collect();
        let scales: Vec<f32> = (0..rows * n / group).map(|_| unit() * 0.1).collect();
        let want: Vec<f32> = dequantize(
            &Tensor::from_slice(&codes, (rows, bits.row_bytes(n)), &Device::Cpu).unwrap(),
            &Tensor::from_slice(&scales, (rows, n / group), &Device::Cpu).unwrap(),
            &cfg,
            n,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
        let width = if bits == Bits::Int8 { 8 } else { 4 };
        let mut q = format!("D {width} {} {group}\n", rows * n);
        for c in &codes {
            q += &format!("{c:x}\n");
        }
        for v in &scales {
            q += &format!("{:x}\n", v.to_bits());
        }
        let got = parse_bits(&run_driver(&exe, &q));
        let same = got
            .iter()
            .zip(&want)
            .all(|(g, w)| g.to_bits() == w.to_bits());
        assert!(
            same && got.len() == want.len(),
            "dequantize {bits:?} n {n} group {group}"
        );
    }
}

fn next_byte(unit: &mut impl FnMut() -> f32) -> u8 {
    (unit() * 256.0) as u8
}

/// The host compiler set up for the MSL: the stand-in `<metal_stdlib>`, and
/// IEEE single precision with nothing contracted, as Metal with fast math
/// off (common.metal spells out every fma).
fn host_compiler(cxx: &str) -> Command {
    let mut c = Command::new(cxx);
    c.args(["-std=c++17", "-O2", "-ffp-contract=off"])
        .arg("-I")
        .arg(crate_dir().join("tests/msl"));
    c
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
