#!/usr/bin/env bash
# Runs on the GPU machine (see kernels/gpu/README.md): checks the CUDA build
# of wb-kernels against the CPU (tests/gpu_parity.rs), then benchmarks every
# op against the device-to-device copy (benches/gpu.rs) and PyTorch
# (torch_peer.py), all in one call. Logs go to $OUT (or ./gpu-out).
#
#   bash run_h100.sh [DIR]   DIR holds what build.sh packed (default: this
#                            script's folder)
# WB_PARITY_FILTER (a test name filter) and WB_BENCH_ARGS (e.g. `--only
# hadamard`) narrow a run while tuning; the final run uses neither. With
# WB_NCU=1, WB_NCU_KERNELS replaces the profiled kernels' name filter and
# WB_NCU_SECTIONS adds Nsight Compute sections (e.g. `--section
# SourceCounters`).
set -uo pipefail
DIR=${1:-$(cd "$(dirname "$0")" && pwd)}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT" /tmp/wbk
cd /tmp/wbk
for f in "$DIR"/*.xz; do xz -dc "$f" > "$(basename "${f%.xz}")"; chmod +x "$(basename "${f%.xz}")"; done
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version | tail -1; } 2>&1 | tee "$OUT/device.txt"
# cuBLAS, cuRAND and NVRTC (linked by candle's cudarc) come from PyTorch's
# wheels; the driver's libcuda from the system.
LIBS=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for pat in ("nvidia/*/lib", "nvidia/cu13/lib"):
        for d in glob.glob(os.path.join(sp, pat)):
            dirs.add(d)
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="$LIBS:${LD_LIBRARY_PATH:-}"
for b in gpu_parity gpu_bench; do ldd "./$b" | grep -E "not found|cuda|cublas|curand|nvrtc" ; done 2>&1 | sort -u | tee "$OUT/ldd.txt"
status=0
echo "== parity tests" | tee "$OUT/parity.log"
timeout 300 ./gpu_parity ${WB_PARITY_FILTER:-} --test-threads=1 --nocapture 2>&1 | tee -a "$OUT/parity.log" || status=1
echo "== benchmark" | tee "$OUT/bench.log"
timeout 240 ./gpu_bench ${WB_BENCH_ARGS:-} 2>&1 | tee -a "$OUT/bench.log" || status=1
if [ -n "${WB_NCU:-}" ] && command -v ncu >/dev/null; then
    # Base (shuffle) and staged Hadamard kernels, and the sampling kernel:
    # throughput sections, then the warp stall reasons. WB_NCU_KERNELS
    # replaces the kernel name filter while tuning.
    K=${WB_NCU_KERNELS:-'regex:^(hadamard_(bf16_bf16_10|s2_bf16_10|f32_f32_14|s3_f32_14)|gumbel_(tab2p4_|bits_)?f32)$'}
    echo "== ncu" | tee "$OUT/ncu.log"
    timeout 150 ncu --kernel-name "$K" --launch-count 16 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis ${WB_NCU_SECTIONS:-} ./gpu_bench --profile 2>&1 | grep -vE "^==PROF==|^\s*$" >> "$OUT/ncu.log" || true
    echo "== ncu stalls" >> "$OUT/ncu.log"
    M=smsp__inst_executed.sum
    for r in no_instruction long_scoreboard short_scoreboard mio_throttle barrier math_pipe_throttle lg_throttle wait not_selected selected dispatch_stall branch_resolving; do
        M="$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
    done
    timeout 120 ncu --kernel-name "$K" --launch-count 16 --metrics "$M" \
        ./gpu_bench --profile 2>&1 | grep -vE "^==PROF==|^\s*$" >> "$OUT/ncu.log" || true
fi
echo "== pytorch peer" | tee -a "$OUT/bench.log"
timeout 60 python3 "$DIR/torch_peer.py" 2>&1 | tee -a "$OUT/bench.log" || status=1
exit $status
