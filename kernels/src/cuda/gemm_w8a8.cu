// W8A8 GEMM on int8 tensor cores (src/gemm/mod.rs): C[M, N] = A[M, K] · B[N, K]^T
// with int32 accumulation, then either the raw int32 sums or
// (acc as f32 · row_scale[m]) · col_scale[n].
//
// One block per output tile; block i takes the tile tiles[i] = row << 16 | col
// (the schedule's map), so the order in which tiles are launched, and hence
// which A/B panels share L2, is the schedule's. Per block: a BM × BN tile,
// warps of WM × WN, K in steps of 64 bytes through a 4-stage cp.async ring in
// shared memory (XOR-swizzled 16-byte chunks so ldmatrix is conflict-free),
// ldmatrix.x4 fragments and mma.sync m16n8k32 s8·s8 → s32. Rows past M,
// columns past N and K past the end are zero-filled by cp.async (src size 0),
// so any M, N and any K that is a multiple of 16 work.
#include <stdint.h>

namespace {

constexpr int BK = 64;      // bytes of K per stage
constexpr int STAGES = 4;

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Byte offset of 16-byte chunk `c` (0..3) of row `r` in a [rows][64] tile.
__device__ __forceinline__ int swz(int r, int c) { return r * BK + ((c ^ ((r >> 1) & 3)) << 4); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

__device__ __forceinline__ void mma_s8(int* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Loads rows [row0, row0 + ROWS) × K bytes [k0, k0 + 64) of a [rows_total, K]
// matrix into a swizzled [ROWS][64] tile.
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_tile(uint8_t* tile, const int8_t* g, int row0, int rows_total, int k0, int K) {
#pragma unroll
    for (int c = threadIdx.x; c < ROWS * 4; c += THREADS) {
        const int r = c >> 2, ch = c & 3;
        const int gr = row0 + r, gk = k0 + ch * 16;
        const bool ok = gr < rows_total && gk < K;
        const int8_t* src = ok ? g + (long long)gr * K + gk : g;
        cp_async16(smem_u32(tile + swz(r, ch)), src, ok ? 16 : 0);
    }
}

template <int BM, int BN, int WM, int WN, bool SCALED>
__device__ __forceinline__ void gemm(const int8_t* __restrict__ A, const int8_t* __restrict__ B,
                                     const uint32_t* __restrict__ tiles, const float* __restrict__ scales,
                                     void* __restrict__ out, int M, int N, int K) {
    constexpr int WARPS_N = BN / WN;
    constexpr int THREADS = (BM / WM) * WARPS_N * 32;
    constexpr int FM = WM / 16, FN = WN / 8;
    extern __shared__ __align__(128) uint8_t smem[];
    uint8_t* sa = smem;                        // [STAGES][BM][64]
    uint8_t* sb = smem + STAGES * BM * BK;     // [STAGES][BN][64]

    const uint32_t t = tiles[blockIdx.x];
    const int row0 = (int)(t >> 16) * BM, col0 = (int)(t & 0xffff) * BN;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;

    int acc[FM][FN][4];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

    const int ktiles = (K + BK - 1) / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) {
            load_tile<BM, THREADS>(sa + s * BM * BK, A, row0, M, s * BK, K);
            load_tile<BN, THREADS>(sb + s * BN * BK, B, col0, N, s * BK, K);
        }
        cp_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        cp_wait<STAGES - 2>();
        __syncthreads();
        // Refill the stage computed in the previous iteration (all warps are
        // past it: the barrier above).
        const int nk = kt + STAGES - 1;
        if (nk < ktiles) {
            const int s = nk % STAGES;
            load_tile<BM, THREADS>(sa + s * BM * BK, A, row0, M, nk * BK, K);
            load_tile<BN, THREADS>(sb + s * BN * BK, B, col0, N, nk * BK, K);
        }
        cp_commit();
        const uint8_t* ta = sa + (kt % STAGES) * BM * BK;
        const uint8_t* tb = sb + (kt % STAGES) * BN * BK;
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {
            uint32_t af[FM][4];
#pragma unroll
            for (int i = 0; i < FM; ++i) {
                const int r = wm + i * 16 + (lane & 15);
                ldmatrix_x4(smem_u32(ta + swz(r, ks * 2 + (lane >> 4))), af[i][0], af[i][1], af[i][2], af[i][3]);
            }
#pragma unroll
            for (int j = 0; j < FN; j += 2) {
                uint32_t b0, b1, b2, b3;
                const int r = wn + j * 8 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(smem_u32(tb + swz(r, ks * 2 + ((lane >> 3) & 1))), b0, b1, b2, b3);
#pragma unroll
                for (int i = 0; i < FM; ++i) {
                    mma_s8(acc[i][j], af[i], b0, b1);
                    mma_s8(acc[i][j + 1], af[i], b2, b3);
                }
            }
        }
    }
    cp_wait<0>();

    const int g = lane >> 2, tig = lane & 3;
    const bool pairs = (N & 1) == 0;
#pragma unroll
    for (int i = 0; i < FM; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + wm + i * 16 + g + h * 8;
            if (r >= M) continue;
            const float rs = SCALED ? scales[r] : 0.0f;
#pragma unroll
            for (int j = 0; j < FN; ++j) {
                const int c = col0 + wn + j * 8 + tig * 2;
                const int v0 = acc[i][j][h * 2], v1 = acc[i][j][h * 2 + 1];
                const long long o = (long long)r * N + c;
                if (SCALED) {
                    float* y = static_cast<float*>(out);
                    // Rounded as the CPU: (acc as f32 · row) · col, no FMA.
                    const float y0 = __fmul_rn(__fmul_rn(__int2float_rn(v0), rs), c < N ? scales[M + c] : 0.0f);
                    const float y1 = __fmul_rn(__fmul_rn(__int2float_rn(v1), rs), c + 1 < N ? scales[M + c + 1] : 0.0f);
                    if (pairs && c + 1 < N) {
                        *reinterpret_cast<float2*>(y + o) = make_float2(y0, y1);
                    } else {
                        if (c < N) y[o] = y0;
                        if (c + 1 < N) y[o + 1] = y1;
                    }
                } else {
                    int* y = static_cast<int*>(out);
                    if (pairs && c + 1 < N) {
                        *reinterpret_cast<int2*>(y + o) = make_int2(v0, v1);
                    } else {
                        if (c < N) y[o] = v0;
                        if (c + 1 < N) y[o + 1] = v1;
                    }
                }
            }
        }
    }
}

}  // namespace

// gemm_w8a8_{i32,f32}_BMxBN: one instantiation per tile in CUDA_TILES
// (src/gemm/mod.rs) and output kind.
#define GEMM(BM, BN, WM, WN)                                                                                         \
    extern "C" __global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32) gemm_w8a8_i32_##BM##x##BN(              \
        const int8_t* A, const int8_t* B, const uint32_t* tiles, const float* scales, int* out, int M, int N, int K) { \
        gemm<BM, BN, WM, WN, false>(A, B, tiles, scales, out, M, N, K);                                              \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32) gemm_w8a8_f32_##BM##x##BN(              \
        const int8_t* A, const int8_t* B, const uint32_t* tiles, const float* scales, float* out, int M, int N,      \
        int K) {                                                                                                     \
        gemm<BM, BN, WM, WN, true>(A, B, tiles, scales, out, M, N, K);                                               \
    }

GEMM(256, 128, 64, 64)
GEMM(128, 128, 64, 32)
GEMM(128, 64, 64, 32)
GEMM(64, 128, 32, 32)
GEMM(64, 64, 32, 32)
GEMM(32, 128, 32, 32)
GEMM(16, 128, 16, 32)
GEMM(16, 64, 16, 16)
