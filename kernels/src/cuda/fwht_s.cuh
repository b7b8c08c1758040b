// The staged transpose kernel (hadamard.cu's `hadamard_s<S>_*` kernels, rows
// of n = 2^10 .. 2^14, f32 or bf16 in and out).
//
// Why: the register kernels hold a row's bytes in registers from load to
// store, so the bytes in flight per multiprocessor are capped by occupancy,
// and while a block computes nothing of its own is in flight. Measured on
// the H100: f32 2^14 at 0.78 of copy (50 % occupancy, `long_scoreboard`), the
// register transpose kernel (fwht_t.cuh) latency-bound at 0.58–0.74. Here
// persistent blocks copy rows into shared memory with `cp.async` S − 1 row
// groups ahead (S stages), so a multiprocessor keeps up to (S − 1) × 32–64
// KiB of loads in flight while it computes; and, as in fwht_t.cuh, the
// butterflies run in registers (32 elements a thread, five levels a phase)
// with the row going through shared memory between phases instead of warp
// shuffles (the shuffle pipe bounds the bf16 register kernels).
//
// Bits of the element index i (L = log2 n, LV = log2 of the 16-byte vector:
// 2 for f32, 3 for bf16); thread t of the row (TPR = n / 32 threads), its
// register j (0..31):
//   P1 (L > 10): registers hold bits L−5 .. L−1, t bits 0 .. L−6; the
//       butterflies of bits 10 .. L−1.
//   P2: registers hold bits LV .. LV+4, t the others (its low LV bits are
//       bits 0 .. LV−1); all five levels.
//   P3: registers hold bits 0 .. LV−1 and LV+5 .. 9; t's low five bits are
//       bits LV .. LV+4 and the rest bits 10 .. L−1; all five levels. Read
//       back as float4s, stored as 16-byte vectors: the lanes of a warp
//       write consecutive vectors.
// Shared-memory layouts are padded, not swizzled: address = i plus 16 bytes
// after every 2^k elements for chosen k, which is additive over disjoint
// bits of i, so every access is a per-thread base plus a compile-time
// offset (an XOR swizzle made ptxas keep one address register per access
// and spill). Bank maps (word w mod 32; f32 bit k of i adds 2^k, padding
// adds 4·2^(k−s) per shift s ≤ k):
//   f32 rows (staged and transformed in place): i + 4·⌊i/2^7⌋. P2's lanes
//       vary bits 0, 1, 7, 8, 9 → banks 1, 2, 4, 8, 16; P1's bits 0..4 and
//       P3's quarter-warp float4s (bits 2..4) are consecutive.
//   bf16 rows, staging (2-byte elements, 16-byte padding): i + 8·⌊i/2^8⌋.
//       P1 reads 32 consecutive elements; P2 when L = 10 reads bits 0, 1, 2,
//       8, 9 → words 0 (same word), 1, 2, 4, 8.
//   bf16 rows, f32 working buffer: i + 4·⌊i/2^5⌋ + 4·⌊i/2^7⌋. P2's bits 0,
//       1, 2, 8, 9 → banks 1, 2, 4, 8, 16; P3's quarter-warp float4s vary
//       bits 3, 4, 5 → 16-byte groups 2, 4, 1.
// f32 rows are transformed in their staging buffer; bf16 rows in one f32
// working buffer per block.
#pragma once
#include "fwht_t.cuh"

namespace wb {

template <typename T, int LOG_N, int S>
struct FwhtS {
    static constexpr int L = LOG_N;
    static constexpr int N = 1 << L;
    static constexpr bool F32 = sizeof(T) == 4;
    static constexpr int LV = F32 ? 2 : 3;
    static constexpr int V = 1 << LV;
    static constexpr int TPR = N / 32;
    static constexpr int RPB = TPR >= 256 ? 1 : 256 / TPR;
    static constexpr int BLOCK = RPB * TPR;
    // Padded row lengths (elements) of the staging and working layouts.
    static constexpr int NS = N + N / 32;
    static constexpr int NW = F32 ? NS : N + N / 8 + N / 32;
    static constexpr int STAGE_BYTES = RPB * NS * (int)sizeof(T);
    static constexpr int WORK_BYTES = F32 ? 0 : RPB * NW * 4;
    static constexpr int SMEM = S * STAGE_BYTES + WORK_BYTES;
    // Blocks per multiprocessor that shared memory allows (228 KiB, 1 KiB
    // reserved per block), asked of the register allocator so that
    // registers do not cut occupancy below it.
    static constexpr int BY_SMEM = (228 * 1024) / (SMEM + 1024);
    static constexpr int BY_THREADS = 2048 / BLOCK;
    static constexpr int MINB = BY_SMEM < BY_THREADS ? BY_SMEM : BY_THREADS;
    static_assert(L >= 10 && L <= 14, "staged kernels cover n = 2^10 .. 2^14");
    static_assert(S >= 2, "at least one stage ahead");
    static_assert(SMEM <= 227 * 1024, "stages exceed shared memory");
    static_assert(STAGE_BYTES % 16 == 0, "16-byte aligned stages");
};

// Element i's place in the staging layout (elements of T).
template <typename T>
__device__ __forceinline__ constexpr int pad_s(int i) {
    if constexpr (sizeof(T) == 4) {
        return i + ((i >> 7) << 2);
    } else {
        return i + ((i >> 8) << 3);
    }
}
// Element i's place in the f32 working layout (words).
template <typename T>
__device__ __forceinline__ constexpr int pad_w(int i) {
    if constexpr (sizeof(T) == 4) {
        return i + ((i >> 7) << 2);
    } else {
        return i + ((i >> 5) << 2) + ((i >> 7) << 2);
    }
}

__device__ __forceinline__ void cp_async16(unsigned smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int K>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(K) : "memory");
}

// Starts the copy of row group g (rows g·RPB ..) into the stage at shared
// address `st`; rows past the end are skipped (their stage holds stale
// data, never stored).
template <typename T, int LOG_N, int S>
__device__ __forceinline__ void fwht_s_issue(const T* x, unsigned st, long long g, long long rows) {
    using C = FwhtS<T, LOG_N, S>;
    constexpr int CHUNKS = C::RPB * C::N / C::V;  // 16-byte chunks of a stage
    static_assert(CHUNKS % C::BLOCK == 0, "whole chunks per thread");
    const long long row0 = g * C::RPB;
    if (row0 >= rows) return;
    const long long left = rows - row0;
    const int valid = left < C::RPB ? (int)left : C::RPB;
    const T* src = x + row0 * C::N;
#pragma unroll
    for (int k = 0; k < CHUNKS / C::BLOCK; ++k) {
        const int e = (threadIdx.x + C::BLOCK * k) * C::V;
        const int rl = e >> C::L, i = e & (C::N - 1);
        if (rl < valid) cp_async16(st + (unsigned)((rl * C::NS + pad_s<T>(i)) * sizeof(T)), src + e);
    }
}

template <typename T, int LOG_N, int S>
__device__ __forceinline__ void fwht_rows_staged(const T* x, T* y, const float* __restrict__ signs,
                                                 long long rows, float scale, int signs_after) {
    using C = FwhtS<T, LOG_N, S>;
    constexpr int N = C::N, L = C::L, LV = C::LV, V = C::V, TPR = C::TPR, RPB = C::RPB;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const unsigned smem_sh = (unsigned)__cvta_generic_to_shared(smem_raw);
    const int tid = threadIdx.x, rloc = tid / TPR, t = tid % TPR;
    const float* sin = signs_after ? nullptr : signs;
    const long long groups = (rows + RPB - 1) / RPB;
    const long long step = gridDim.x;
    // Per-thread bases of each phase (element indices; compile-time offsets
    // are added per register).
    const int b1 = t;                                            // P1
    const int b2 = (t & (V - 1)) | ((t >> LV) << (LV + 5));     // P2
    const int b3 = ((t & 31) << LV) | ((t >> 5) << 10);         // P3
    float* work_rows = reinterpret_cast<float*>(smem_raw + S * C::STAGE_BYTES) + rloc * C::NW;

#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
        fwht_s_issue<T, LOG_N, S>(x, smem_sh + s * C::STAGE_BYTES, blockIdx.x + s * step, rows);
        cp_async_commit();
    }
    int buf = 0;
    for (long long g = blockIdx.x; g < groups; g += step) {
        // The stage S − 1 ahead was last read in the previous iteration,
        // which ended with a barrier after its last shared read.
        const int ahead = buf == 0 ? S - 1 : buf - 1;
        fwht_s_issue<T, LOG_N, S>(x, smem_sh + ahead * C::STAGE_BYTES, g + (S - 1) * step, rows);
        cp_async_commit();
        cp_async_wait<S - 1>();
        __syncthreads();

        const T* srow = reinterpret_cast<const T*>(smem_raw + buf * C::STAGE_BYTES) + rloc * C::NS;
        float* w = C::F32 ? reinterpret_cast<float*>(smem_raw + buf * C::STAGE_BYTES) + rloc * C::NS : work_rows;
        float r[32];
        if constexpr (L > 10) {
            // P1: bits L−5 .. L−1 in registers, butterflies of bits 10 .. L−1.
            const T* s1 = srow + pad_s<T>(b1);
            float* w1 = w + pad_w<T>(b1);
#pragma unroll
            for (int j = 0; j < 32; ++j) {
                r[j] = to_f32(s1[pad_s<T>(j << (L - 5))]);
                if (sin != nullptr) r[j] *= __ldg(sin + b1 + (j << (L - 5)));
            }
            fwht_regs_bits<15 - L, 5>(r);
#pragma unroll
            for (int j = 0; j < 32; ++j) w1[pad_w<T>(j << (L - 5))] = r[j];
            __syncthreads();
        }
        // P2: bits LV .. LV+4, all five levels.
        {
            float* w2 = w + pad_w<T>(b2);
            if constexpr (L > 10) {
#pragma unroll
                for (int j = 0; j < 32; ++j) r[j] = w2[pad_w<T>(j << LV)];
            } else {
                const T* s2 = srow + pad_s<T>(b2);
#pragma unroll
                for (int j = 0; j < 32; ++j) {
                    r[j] = to_f32(s2[pad_s<T>(j << LV)]);
                    if (sin != nullptr) r[j] *= __ldg(sin + b2 + (j << LV));
                }
            }
            fwht_regs<32>(r);
#pragma unroll
            for (int j = 0; j < 32; ++j) w2[pad_w<T>(j << LV)] = r[j];
            __syncthreads();
        }
        // P3: bits 0 .. LV−1 and LV+5 .. 9, all five levels.
        {
            const float* w3 = w + pad_w<T>(b3);
#pragma unroll
            for (int jh = 0; jh < 32 / V; ++jh) {
#pragma unroll
                for (int q = 0; q < V; q += 4) {
                    const float4 v = *reinterpret_cast<const float4*>(w3 + pad_w<T>((jh << (LV + 5)) | q));
                    r[jh * V + q] = v.x;
                    r[jh * V + q + 1] = v.y;
                    r[jh * V + q + 2] = v.z;
                    r[jh * V + q + 3] = v.w;
                }
            }
        }
        // Every shared read of this group is done: the next iteration may
        // refill this stage (and, for bf16, the working buffer).
        __syncthreads();
        fwht_regs<32>(r);
        const long long row = g * RPB + rloc;
        if (row < rows) {
            T* yr = y + row * N + b3;
#pragma unroll
            for (int jh = 0; jh < 32 / V; ++jh) {
                const int off = jh << (LV + 5);
                float o[V];
#pragma unroll
                for (int e = 0; e < V; ++e) {
                    o[e] = r[jh * V + e] * scale;
                    if (signs != nullptr && signs_after) o[e] *= __ldg(signs + b3 + off + e);
                }
                Vec<T, V> v;
                f32_to_vec(o, v);
                store16(yr + off, v);
            }
        }
        buf = buf == S - 1 ? 0 : buf + 1;
    }
    // No copies may be left in flight at exit (the last groups' are empty).
    cp_async_wait<0>();
}

}  // namespace wb
