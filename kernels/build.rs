//! With the `cuda` feature, compiles `src/cuda/*.cu` to PTX with nvcc (the
//! driver JIT-compiles it for the card at load time). `NVCC` names the
//! compiler (default `nvcc` on the PATH) and `WB_CUDA_ARCH` the virtual
//! architecture (default `sm_90`, the H100). Without the feature it does
//! nothing, so CPU builds need no CUDA toolkit.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: [&str; 5] = [
    "hadamard",
    "rotate_quantize",
    "channel_stats",
    "gumbel_sample",
    "gemm_w8a8",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=NVCC");
    println!("cargo::rerun-if-env-changed=WB_CUDA_ARCH");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let arch = std::env::var("WB_CUDA_ARCH").unwrap_or_else(|_| "sm_90".into());
    for header in [
        "common.cuh",
        "fwht.cuh",
        "fwht_t.cuh",
        "fwht_s.cuh",
        "gumbel_prefilter.cuh",
        "topk_threshold.cuh",
    ] {
        println!("cargo::rerun-if-changed=src/cuda/{header}");
    }
    for name in KERNELS {
        let src = format!("src/cuda/{name}.cu");
        println!("cargo::rerun-if-changed={src}");
        let ptx = out.join(format!("{name}.ptx"));
        // No --use_fast_math: the Gumbel scores must round as IEEE says, and
        // the quantizer's division and rint likewise.
        let status = Command::new(&nvcc)
            .args(["-ptx", "-O3", "-std=c++17", "-lineinfo"])
            .arg(format!("-arch={arch}"))
            .args(["-I", "src/cuda", "-o"])
            .arg(&ptx)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| {
                panic!("wb-kernels: cannot run {nvcc} ({e}); set NVCC or put nvcc on the PATH")
            });
        assert!(status.success(), "wb-kernels: {nvcc} failed on {src}");
    }
}
