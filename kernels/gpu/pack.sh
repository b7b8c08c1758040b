# Shared by build.sh and build_gemm.sh (source it; not run on its own): the
# CUDA toolchain from $CUDA_HOME, the link stubs, and `pack DEST TEST BENCH
# FILES...`, which builds the CUDA parity test TEST and benchmark BENCH of
# wb-kernels, packs them (xz) into DEST as TEST.xz and BENCH_bench.xz (the
# names the run scripts unpack), and copies FILES beside them.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CUDA_HOME=${CUDA_HOME:-/work/scratch/cuda13/nvidia/cu13}
export PATH=$CUDA_HOME/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
cd "$ROOT"
bash kernels/gpu/stubs.sh

# Prints "target-name executable" for each binary cargo builds.
build() {
    cargo "$@" -p wb-kernels --features cuda --no-run --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["target"]["name"], m["executable"])'
}

pack() {
    local dest=$1 test=$2 bench=$3
    shift 3
    mkdir -p "$dest"
    rm -f "$dest"/*.xz
    while read -r name exe; do
        case $name in
            "$test") xz -T2 -6 -c "$exe" > "$dest/$test.xz" ;;
            "$bench") xz -T2 -6 -c "$exe" > "$dest/${bench}_bench.xz" ;;
        esac
    done < <(build test --release --test "$test"; build bench --bench "$bench")
    cp "$@" "$dest/"
    ls -la "$dest"
}
