// Kernels for the emulator's own tests (tests/msl_group_check.rs), not part
// of wb-kernels: the simd functions' results, and misbehaviour that the
// emulator must report or expose.

// out[2·tid] = simd_shuffle_down(3·tid, delta), out[2·tid + 1] =
// simd_max((7·tid) % 61) over tid's simdgroup.
kernel void selftest_simd(device uint* out [[buffer(0)]], constant uint& delta [[buffer(1)]],
                          uint tid [[thread_index_in_threadgroup]]) {
    out[2 * tid] = simd_shuffle_down(3 * tid, delta);
    out[2 * tid + 1] = simd_max((7 * tid) % 61);
}

// Threads 0..4 return before a barrier the others wait at.
kernel void selftest_barrier_divergence(device uint* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
    if (tid < 5) return;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[tid] = tid;
}

// Half of each simdgroup calls simd_max.
kernel void selftest_simd_divergence(device uint* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]],
                                     uint lane [[thread_index_in_simdgroup]]) {
    uint v = tid;
    if (lane < 16) v = simd_max(v);
    out[tid] = v;
}

// Each thread reads its left neighbour's value through threadgroup memory;
// racy != 0 leaves out the barrier between the write and the read.
kernel void selftest_neighbour(device const uint* x [[buffer(0)]], device uint* out [[buffer(1)]],
                               constant uint& racy [[buffer(2)]], uint tid [[thread_index_in_threadgroup]]) {
    threadgroup uint part[1024];
    part[tid] = x[tid];
    if (racy == 0) threadgroup_barrier(mem_flags::mem_threadgroup);
    out[tid] = part[tid == 0 ? 0 : tid - 1];
}
