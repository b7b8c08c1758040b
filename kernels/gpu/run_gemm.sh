#!/usr/bin/env bash
# Runs on the GPU machine, one call (see README.md): gemm_w8a8's parity tests
# against the CPU, its benchmark over schedules and shapes (with candle's bf16
# matmul), Nsight Compute's L2 hit rate per schedule, and the cuBLAS peers
# through PyTorch (int8 _int_mm, bf16, f16, and the card's peaks). Results go
# to $OUT (or ./gpu-out): run.log, gemm_parity.log, gemm_bench.log,
# gemm_gpu.csv, gemm_l2.csv (Nsight Compute's CSV joined with the profiled
# configurations), gemm_peer.csv and gemm_peer.log.
#
#   bash run_gemm.sh [DIR]   DIR holds what build_gemm.sh packed (default:
#                            this script's folder)
set -uo pipefail
DIR=${1:-$(cd "$(dirname "$0")" && pwd)}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT" /tmp/wbg
cd /tmp/wbg
for f in "$DIR"/*.xz; do xz -dc "$f" > "$(basename "${f%.xz}")"; chmod +x "$(basename "${f%.xz}")"; done
exec > >(tee "$OUT/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv
python3 -c 'import torch; p = torch.cuda.get_device_properties(0); print(p.name, p.multi_processor_count, "SMs, L2", getattr(p, "L2_cache_size", 0) >> 20, "MiB")'
LIBS=$(python3 - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for pat in ("nvidia/*/lib", "nvidia/cu13/lib"):
        dirs.update(glob.glob(os.path.join(sp, pat)))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="$LIBS:${LD_LIBRARY_PATH:-}"
ldd ./gemm_gpu_bench | grep -E "not found" || true
status=0
echo "== parity ($(date +%T))"
timeout 120 ./gemm_parity --test-threads=1 --nocapture > "$OUT/gemm_parity.log" 2>&1 || status=1
tail -5 "$OUT/gemm_parity.log"
echo "== benchmark ($(date +%T))"
timeout 210 ./gemm_gpu_bench ${WB_GEMM_QUICK:+--quick} --csv "$OUT/gemm_gpu.csv" > "$OUT/gemm_bench.log" 2>&1 || { status=1; tail -20 "$OUT/gemm_bench.log"; }
grep -E "^square" "$OUT/gemm_bench.log" | head -40
if command -v ncu >/dev/null; then
    echo "== ncu ($(date +%T))"
    timeout 150 ncu --kernel-name regex:gemm_w8a8 --csv --print-units base \
        --metrics lts__t_sector_hit_rate.pct,gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sectors.sum \
        ./gemm_gpu_bench --profile --csv /tmp/wbg/ncu_configs.csv > /tmp/wbg/ncu_raw.csv 2>&1 || status=1
    python3 "$DIR/gemm_ncu_table.py" /tmp/wbg/ncu_raw.csv /tmp/wbg/ncu_configs.csv "$OUT/gemm_l2.csv" > /dev/null || status=1
fi
echo "== pytorch peers ($(date +%T))"
timeout 100 python3 "$DIR/gemm_peer.py" "$OUT/gemm_peer.csv" > "$OUT/gemm_peer.log" 2>&1 || status=1
grep -E "^peak|Error|error" "$OUT/gemm_peer.log" | head
echo "== done ($(date +%T)) status $status"
exit $status
