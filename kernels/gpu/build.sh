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
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$ROOT/../main/.devcarry/wb-kernels}
export CUDA_HOME=${CUDA_HOME:-/work/scratch/cuda13/nvidia/cu13}
export PATH=$CUDA_HOME/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
cd "$ROOT"
bash kernels/gpu/stubs.sh
build() {
    cargo "$@" -p wb-kernels --features cuda --no-run --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["target"]["name"], m["executable"])'
}
mkdir -p "$DEST"
rm -f "$DEST"/*.xz
while read -r name exe; do
    case $name in
        gpu_parity) xz -T2 -6 -c "$exe" > "$DEST/gpu_parity.xz" ;;
        gpu) xz -T2 -6 -c "$exe" > "$DEST/gpu_bench.xz" ;;
    esac
done < <(build test --release --test gpu_parity; build bench --bench gpu)
cp kernels/gpu/run_h100.sh kernels/gpu/torch_peer.py "$DEST/"
ls -la "$DEST"
