#!/usr/bin/env bash
# Link stubs for the CUDA libraries candle's cudarc links to (dynamic
# linking): one empty function per symbol cudarc's compiled code needs, in a
# library with the real one's soname, so the binaries link here and load the
# real libraries on the GPU machine. Written into $CUDA_HOME/lib, which
# cudarc's build script puts on the link search path. Needs a compiled
# cudarc (the first build may fail at link time; run this and build again).
set -euo pipefail
LIB=${CUDA_HOME:?set CUDA_HOME}/lib
TARGET=${CARGO_TARGET_DIR:-target}
RLIB=$(ls -t "$TARGET"/release/deps/libcudarc-*.rlib 2>/dev/null | head -1 || true)
[ -n "$RLIB" ] || { echo "stubs.sh: no cudarc rlib yet in $TARGET (build once first)"; exit 0; }
ln -sf libcudart.so.13 "$LIB/libcudart.so"
TMP=$(mktemp -d)
nm -u "$RLIB" 2>/dev/null | awk '{print $NF}' | sort -u > "$TMP/syms"
make_stub() { # name soname pattern [exclude]
    local name=$1 soname=$2 pat=$3 excl=${4:-^$}
    grep -E "$pat" "$TMP/syms" | grep -Ev "$excl" | sed 's/.*/void &(void) {}/' > "$TMP/$name.c"
    gcc -shared -fPIC -o "$LIB/lib$name.so" -Wl,-soname,"$soname" "$TMP/$name.c"
    echo "stub lib$name.so ($soname): $(wc -l < "$TMP/$name.c") symbols"
}
make_stub cublasLt libcublasLt.so.13 '^cublasLt'
make_stub cublas libcublas.so.13 '^cublas' '^cublasLt'
make_stub curand libcurand.so.10 '^curand'
make_stub nvrtc libnvrtc.so.13 '^nvrtc'
make_stub cuda libcuda.so.1 '^cu[A-Z]'
rm -rf "$TMP"
