// The butterflies of long rows through shared-memory transposes instead of
// warp shuffles (hadamard.cu's `hadamard_t_*` kernels, n = 2^10 .. 2^15).
//
// Why: a shuffle level moves every element once through the shared-memory
// pipe, and on the H100 a 32-lane shuffle costs that pipe about two cycles,
// so five lane levels of bf16 rows kept the pipe ~97 % busy while DRAM sat at
// 50–70 % (Nsight Compute). Here each thread holds EPT = 32 elements and
// does five butterfly levels in registers per phase; between phases the row
// goes through shared memory once (one write and one read per element,
// conflict-free), so a row of 2^10 costs four shared accesses per element
// (A → B1 → back) and 2^11 .. 2^15 six, against five shuffles plus four
// accesses before.
//
// Bits of the element index i (L = log2 n, LV = log2 of the 16-byte input
// vector: 2 for f32, 3 for 16-bit types):
//   phase A  (load layout, as FwhtCfg): registers hold bits 0..LV-1 and the
//            top 5-LV bits; thread t holds i = e + V·(t + TPR·c).
//   phase B1: registers hold bits LV..LV+4; the thread's other bits are t.
//   phase B2 (L > 10): registers hold the five bits P..P+4 (P = min(LV+5,
//            L-5)); only bits LV+5 .. L-6+LV are new there.
// Then the row is read back in the load layout and stored as 16-byte vectors.
//
// Shared memory holds the row in index order under an XOR swizzle (bits
// LV+5..9 into LV..4, and for LV = 3 bit 5 into bit 2), so that the 16-byte
// accesses of phase A and the scalar accesses of B1 and B2 hit 32 distinct
// banks per warp (lanes vary bits {0..LV-1, LV+5..9} in B1 and 0..4 in B2).
// The swizzle is linear over XOR, so swz(base | j) = swz(base) ^ swz(j).
#pragma once
#include "fwht.cuh"

namespace wb {

template <typename Tin, int LOG_N>
struct FwhtT {
    static constexpr int L = LOG_N;
    static constexpr int N = 1 << L;
    static constexpr int LV = sizeof(Tin) == 4 ? 2 : 3;
    static constexpr int V = 1 << LV;
    static constexpr int EPT = 32;
    static constexpr int CH = EPT / V;
    static constexpr int TPR = N / EPT;
    static constexpr int RPB = TPR >= 256 ? 1 : 256 / TPR;
    static constexpr int BLOCK = RPB * TPR;
    // Blocks per multiprocessor asked of the register allocator: at most 64
    // registers a thread (50 % occupancy). Left free, ptxas took 86–88 and
    // the kernel ran at 25 % occupancy, stalled on global loads.
    // (A 40-register cap spilled 0.4–0.7 KB a thread and ran at 0.18–0.35
    // of copy.)
    static constexpr int MINB = 1024 / BLOCK;
    static constexpr bool TWO = L > 10;
    static constexpr int P2 = LV + 5 < L - 5 ? LV + 5 : L - 5;
    static_assert(L >= 10 && L <= 15, "transpose kernels cover n = 2^10 .. 2^15");
};

template <int LV>
__device__ __forceinline__ int swz(int i) {
    int s = i;
#pragma unroll
    for (int k = 0; k < 5 - LV; ++k) s ^= ((i >> (LV + 5 + k)) & 1) << (LV + k);
    if (LV == 3) s ^= ((i >> 5) & 1) << 2;
    return s;
}

// Butterfly levels on register bits LO .. HI-1 only.
template <int LO, int HI, int K>
__device__ __forceinline__ void fwht_regs_bits(float (&r)[K]) {
#pragma unroll
    for (int h = 1 << LO; h < (1 << HI); h <<= 1) {
#pragma unroll
        for (int j = 0; j < K; ++j) {
            if ((j & h) == 0) {
                float a = r[j], b = r[j + h];
                r[j] = a + b;
                r[j + h] = a - b;
            }
        }
    }
}

template <int TPR>
__device__ __forceinline__ void row_sync() {
    if constexpr (TPR <= 32) {
        __syncwarp();
    } else {
        __syncthreads();
    }
}

// One phase B: the thread's 32 elements at register bits P..P+4 of the
// index (its other bits from t), butterflies on register bits LO..HI-1.
template <int LV, int P, int LO, int HI>
__device__ __forceinline__ void fwht_t_phase(float* srow, int t, float (&r)[32]) {
    const int base = (t & ((1 << P) - 1)) | ((t >> P) << (P + 5));
    const int sb = swz<LV>(base);
#pragma unroll
    for (int j = 0; j < 32; ++j) r[j] = srow[sb ^ swz<LV>(j << P)];
    fwht_regs_bits<LO, HI>(r);
#pragma unroll
    for (int j = 0; j < 32; ++j) srow[sb ^ swz<LV>(j << P)] = r[j];
}

// All the butterflies of the row whose load-layout elements are in r
// (unscaled); r ends in the load layout again. Every thread of the block
// must call it.
template <typename Tin, int LOG_N>
__device__ __forceinline__ void fwht_t_transform(float* srow, int t, float (&r)[32]) {
    using C = FwhtT<Tin, LOG_N>;
    constexpr int V = C::V, LV = C::LV, TPR = C::TPR, L = C::L;
    fwht_regs<32>(r);
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
#pragma unroll
        for (int e = 0; e < V; e += 4) {
            const int i = e + V * (t + TPR * c);
            *reinterpret_cast<float4*>(srow + swz<LV>(i)) =
                make_float4(r[c * V + e], r[c * V + e + 1], r[c * V + e + 2], r[c * V + e + 3]);
        }
    }
    row_sync<TPR>();
    fwht_t_phase<LV, LV, 0, 5>(srow, t, r);
    row_sync<TPR>();
    if constexpr (C::TWO) {
        constexpr int P = C::P2;
        fwht_t_phase<LV, P, LV + 5 - P, L - 5 + LV - P>(srow, t, r);
        row_sync<TPR>();
    }
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
#pragma unroll
        for (int e = 0; e < V; e += 4) {
            const int i = e + V * (t + TPR * c);
            const float4 v = *reinterpret_cast<const float4*>(srow + swz<LV>(i));
            r[c * V + e] = v.x;
            r[c * V + e + 1] = v.y;
            r[c * V + e + 2] = v.z;
            r[c * V + e + 3] = v.w;
        }
    }
}

}  // namespace wb
