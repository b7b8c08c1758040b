#!/usr/bin/env bash
# Builds the CUDA parity test and benchmark of gemm_w8a8 (tests/gemm_parity.rs,
# benches/gemm_gpu.rs) on a machine without a GPU and packs them with
# run_gemm.sh and gemm_peer.py for the GPU machine, as build.sh does for the
# other ops (see README.md for CUDA_HOME and the link stubs).
#
#   kernels/gpu/build_gemm.sh [DEST]   (default DEST: ../main/.devcarry/wb-gemm)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$ROOT/../main/.devcarry/wb-gemm}
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
        gemm_parity) xz -T2 -6 -c "$exe" > "$DEST/gemm_parity.xz" ;;
        gemm_gpu) xz -T2 -6 -c "$exe" > "$DEST/gemm_gpu_bench.xz" ;;
    esac
done < <(build test --release --test gemm_parity; build bench --bench gemm_gpu)
cp kernels/gpu/run_gemm.sh kernels/gpu/gemm_peer.py kernels/gpu/gemm_ncu_table.py "$DEST/"
ls -la "$DEST"
