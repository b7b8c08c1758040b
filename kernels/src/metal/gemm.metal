// W8A8 GEMM (src/gemm/mod.rs): C[M, N] = A[M, K] · B[N, K]^T in int32, then the
// raw sums or (acc as f32 · row_scale[m]) · col_scale[n].
//
// Metal's simdgroup_matrix takes half, float and bfloat but no integer types,
// so this is a plain threadgroup-tiled kernel: 64 × 64 tiles, K in steps of
// 32 through threadgroup memory, 256 threads of 4 × 4 outputs, int32 sums of
// int8 products. Threadgroup i takes tile tiles[i] = row << 16 | col (the
// schedule's map), as the CUDA kernel does.

struct GemmParams {
    uint m;
    uint n;
    uint k;
    uint scaled;
};

constant constexpr uint GBM = 64;
constant constexpr uint GBN = 64;
constant constexpr uint GBK = 32;

// Rows [row0, row0 + 64) × K [k0, k0 + 32) of a [rows, K] matrix into
// t[64][32], zeros outside; each of the 256 threads copies 8 bytes.
inline void gemm_load(threadgroup char* t, device const char* g, uint row0, uint rows, uint k0, uint K,
                      uint tid) {
    const uint r = tid >> 2, c = (tid & 3) * 8;
    const uint gr = row0 + r;
    for (uint e = 0; e < 8; ++e) {
        const uint gk = k0 + c + e;
        t[r * GBK + c + e] = (gr < rows && gk < K) ? g[ulong(gr) * K + gk] : char(0);
    }
}

kernel void gemm_w8a8(device const char* a [[buffer(0)]], device const char* b [[buffer(1)]],
                      device const uint* tiles [[buffer(2)]], device const float* scales [[buffer(3)]],
                      device void* out [[buffer(4)]], constant GemmParams& p [[buffer(5)]],
                      uint tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
    // Declared as char4 for 4-byte alignment of the char4 reads below.
    threadgroup char4 sa4[GBM * GBK / 4];
    threadgroup char4 sb4[GBN * GBK / 4];
    threadgroup char* sa = reinterpret_cast<threadgroup char*>(sa4);
    threadgroup char* sb = reinterpret_cast<threadgroup char*>(sb4);
    const uint t = tiles[tg];
    const uint row0 = (t >> 16) * GBM, col0 = (t & 0xffffu) * GBN;
    const uint ty = tid >> 4, tx = tid & 15;
    int acc[4][4] = {{0}};
    for (uint k0 = 0; k0 < p.k; k0 += GBK) {
        gemm_load(sa, a, row0, p.m, k0, p.k, tid);
        gemm_load(sb, b, col0, p.n, k0, p.k, tid);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (uint kk = 0; kk < GBK; kk += 4) {
            int4 av[4], bv[4];
            for (uint i = 0; i < 4; ++i) {
                av[i] = int4(*reinterpret_cast<threadgroup const char4*>(sa + (ty * 4 + i) * GBK + kk));
                bv[i] = int4(*reinterpret_cast<threadgroup const char4*>(sb + (tx * 4 + i) * GBK + kk));
            }
            for (uint i = 0; i < 4; ++i)
                for (uint j = 0; j < 4; ++j) {
                    const int4 pr = av[i] * bv[j];
                    acc[i][j] += pr.x + pr.y + pr.z + pr.w;
                }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (uint i = 0; i < 4; ++i) {
        const uint r = row0 + ty * 4 + i;
        if (r >= p.m) continue;
        for (uint j = 0; j < 4; ++j) {
            const uint c = col0 + tx * 4 + j;
            if (c >= p.n) continue;
            const ulong o = ulong(r) * p.n + c;
            if (p.scaled != 0) {
                // (acc as f32 · row) · col, as the CPU rounds it (fast math is off).
                reinterpret_cast<device float*>(out)[o] = (float(acc[i][j]) * scales[r]) * scales[p.m + c];
            } else {
                reinterpret_cast<device int*>(out)[o] = acc[i][j];
            }
        }
    }
}
