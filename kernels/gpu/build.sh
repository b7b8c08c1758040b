#!/usr/bin/env bash
# Builds the CUDA test and benchmark binaries of wb-kernels on a machine
# without a GPU and packs them for run_h100.sh (see kernels/gpu/README.md).
#
#   kernels/gpu/build.sh [DEST]   (default DEST: ../main/.devcarry/wb-kernels)
#
# Needs: nvcc 13.0 in $CUDA_HOME (from the PyPI wheels nvidia-cuda-nvcc,
# nvidia-nvvm, nvidia-cuda-crt, nvidia-cuda-runtime, nvidia-cuda-cccl, unpacked
# into one tree), and link stubs for libcuda/cublas/cublasLt/curand/nvrtc,
# which stubs.sh makes in $CUDA_HOME/lib (the real ones are on the GPU
# machine). CUDA_COMPUTE_CAP=90 tells candle's kernels the target (no GPU
# here to ask).
set -euo pipefail
DEST=${1:-$(cd "$(dirname "$0")/../.." && pwd)/../main/.devcarry/wb-kernels}
source "$(dirname "$0")/pack.sh"
pack "$DEST" gpu_parity gpu kernels/gpu/run_h100.sh kernels/gpu/torch_peer.py
