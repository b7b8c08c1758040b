#!/usr/bin/env bash
# Builds the CUDA parity test and benchmark of gemm_w8a8 (tests/gemm_parity.rs,
# benches/gemm_gpu.rs) on a machine without a GPU and packs them with
# run_gemm.sh and gemm_peer.py for the GPU machine, as build.sh does for the
# other ops (see README.md for CUDA_HOME and the link stubs).
#
#   kernels/gpu/build_gemm.sh [DEST]   (default DEST: ../main/.devcarry/wb-gemm)
set -euo pipefail
DEST=${1:-$(cd "$(dirname "$0")/../.." && pwd)/../main/.devcarry/wb-gemm}
source "$(dirname "$0")/pack.sh"
pack "$DEST" gemm_parity gemm_gpu kernels/gpu/run_gemm.sh kernels/gpu/gemm_peer.py kernels/gpu/gemm_ncu_table.py
