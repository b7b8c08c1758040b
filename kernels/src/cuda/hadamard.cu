// Fast normalised Hadamard transform of rows, n = m·2^k (see src/hadamard/mod.rs
// for the convention; the GPU sums in a different order than the CPU, so
// results agree to rounding, not bit for bit).
//
// hadamard_<in>_<out>_<L>: the butterflies of rows of N = 2^L elements, one
// pass over memory. Each row is held by TPR threads with EPT = N / TPR
// elements each; thread t's register j = c·V + e holds element
// i = e + V·(t + TPR·c), so every load and store is a 16-byte vector and a
// warp touches consecutive vectors. The bits of i are then done in three
// places:
//   - e and c bits: inside the thread (registers);
//   - the lane bits of t: warp shuffles;
//   - the warp bits of t: one exchange through shared memory, where each
//     thread takes the W elements that differ only in those bits (EPT ≥ W by
//     the choice of EPT, so every thread has whole groups).
// Signs (x ⊙ s) are applied on load for the forward transform and on store
// for the transposed one; the scale on store. In place (x == y) is safe: all
// of a row's loads precede its stores (shuffles or a barrier in between).
//
// mix_<out>: the m×m mix for m > 1, on the f32 butterfly output: output chunk
// a = scale · Σ_b M[b][a] · chunk b, with M = Bᵀ (forward) or B (transposed),
// given row-major m × m8 (columns padded to a multiple of 8 with zeros).
#include "fwht_s.cuh"

using namespace wb;

template <typename Tin, typename Tout, int LOG_N, int EXTRA = 0>
__device__ __forceinline__ void fwht_rows(const Tin* x, Tout* y, const float* __restrict__ signs_all,
                                          long long rows, float scale, int signs_after, int chunks) {
    using C = FwhtCfg<Tin, LOG_N, EXTRA>;
    constexpr int N = C::N, V = C::V, TPR = C::TPR;
    extern __shared__ float smem[];
    const RowPos pos = row_pos<Tin, LOG_N, EXTRA>(rows);
    const int t = pos.t;
    // Rows of an m·2^k transform are its m chunks: chunk j of a row uses
    // signs j·N .. (j + 1)·N.
    const float* signs = signs_all != nullptr ? signs_all + (pos.row % chunks) * N : nullptr;
    float r[C::EPT];
    fwht_load_transform<Tin, LOG_N, EXTRA>(x, signs_after ? nullptr : signs, pos, smem, r);
    if (!pos.live) return;
    const long long row = pos.row;
    Tout* yr = y + row * N;
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
        float o[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
            o[e] = r[c * V + e] * scale;
            if (signs != nullptr && signs_after) o[e] *= __ldg(signs + off + e);
        }
        if constexpr (V * sizeof(Tout) == 16 || (V * sizeof(Tout)) % 16 == 0) {
            constexpr int VO = 16 / sizeof(Tout);
#pragma unroll
            for (int e0 = 0; e0 < V; e0 += VO) {
                Vec<Tout, VO> v;
                f32_to_vec(o + e0, v);
                store16(yr + off + e0, v);
            }
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) yr[off + e] = from_f32<Tout>(o[e]);
        }
    }
}


#define FWHT(TI, TO, NI, NO, L)                                                              \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<TI, L>::BLOCK)                     \
        hadamard_##NI##_##NO##_##L(const TI* x, TO* y, const float* signs, long long rows, \
                                   float scale, int signs_after, int chunks) {             \
        fwht_rows<TI, TO, L>(x, y, signs, rows, scale, signs_after, chunks);               \
    }

#define FWHT_ALL(TI, TO, NI, NO) \
    FWHT(TI, TO, NI, NO, 0)      \
    FWHT(TI, TO, NI, NO, 1)      \
    FWHT(TI, TO, NI, NO, 2)      \
    FWHT(TI, TO, NI, NO, 3)      \
    FWHT(TI, TO, NI, NO, 4)      \
    FWHT(TI, TO, NI, NO, 5)      \
    FWHT(TI, TO, NI, NO, 6)      \
    FWHT(TI, TO, NI, NO, 7)      \
    FWHT(TI, TO, NI, NO, 8)      \
    FWHT(TI, TO, NI, NO, 9)      \
    FWHT(TI, TO, NI, NO, 10)     \
    FWHT(TI, TO, NI, NO, 11)     \
    FWHT(TI, TO, NI, NO, 12)     \
    FWHT(TI, TO, NI, NO, 13)     \
    FWHT(TI, TO, NI, NO, 14)     \
    FWHT(TI, TO, NI, NO, 15)

FWHT_ALL(float, float, f32, f32)
FWHT_ALL(__nv_bfloat16, __nv_bfloat16, bf16, bf16)
FWHT_ALL(__half, __half, f16, f16)
FWHT_ALL(__nv_bfloat16, float, bf16, f32)
FWHT_ALL(__half, float, f16, f32)

// The transpose kernel (fwht_t.cuh): rows of 2^10 .. 2^15, 32 elements per
// thread, shared-memory transposes instead of shuffles. Same conventions as
// fwht_rows (signs on load or store, scale on store, in place safe).
template <typename Tin, typename Tout, int LOG_N>
__device__ __forceinline__ void fwht_rows_t(const Tin* x, Tout* y, const float* __restrict__ signs,
                                            long long rows, float scale, int signs_after) {
    using C = FwhtT<Tin, LOG_N>;
    constexpr int N = C::N, V = C::V, TPR = C::TPR;
    extern __shared__ float smem[];
    const int tid = threadIdx.x, rloc = tid / TPR, t = tid % TPR;
    const long long row = (long long)blockIdx.x * C::RPB + rloc;
    const bool live = row < rows;
    float r[32];
    const Tin* xr = x + row * N;
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
        if (live) {
            const Vec<Tin, V> v = *reinterpret_cast<const Vec<Tin, V>*>(xr + off);
            vec_to_f32(v, r + c * V);
            if (signs != nullptr && !signs_after) {
#pragma unroll
                for (int e = 0; e < V; ++e) r[c * V + e] *= __ldg(signs + off + e);
            }
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) r[c * V + e] = 0.0f;
        }
    }
    fwht_t_transform<Tin, LOG_N>(smem + rloc * N, t, r);
    if (!live) return;
    Tout* yr = y + row * N;
    constexpr int VO = 16 / sizeof(Tout);
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
        float o[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
            o[e] = r[c * V + e] * scale;
            if (signs != nullptr && signs_after) o[e] *= __ldg(signs + off + e);
        }
#pragma unroll
        for (int e0 = 0; e0 < V; e0 += VO) {
            Vec<Tout, VO> v;
            f32_to_vec(o + e0, v);
            store16(yr + off + e0, v);
        }
    }
}

#define FWHTT(T, NT, L)                                                                     \
    extern "C" __global__ void __launch_bounds__(FwhtT<T, L>::BLOCK, FwhtT<T, L>::MINB)    \
        hadamard_t_##NT##_##L(const T* x, T* y, const float* signs, long long rows,        \
                              float scale, int signs_after, int chunks) {                  \
        fwht_rows_t<T, T, L>(x, y, signs, rows, scale, signs_after);                       \
    }
#define FWHTT_ALL(T, NT) \
    FWHTT(T, NT, 10)     \
    FWHTT(T, NT, 11)     \
    FWHTT(T, NT, 12)     \
    FWHTT(T, NT, 13)     \
    FWHTT(T, NT, 14)     \
    FWHTT(T, NT, 15)
FWHTT_ALL(float, f32)
FWHTT_ALL(__nv_bfloat16, bf16)
FWHTT_ALL(__half, f16)

// The software-pipelined kernel for long rows (one row per block, RPB = 1):
// persistent blocks loop over rows, and the loads of the next row are issued
// before the current row's butterflies and shared-memory exchange, so memory
// stays busy while a block computes (with one or two 64–128 KiB blocks per
// multiprocessor there is otherwise little else to overlap with).
template <typename Tin, typename Tout, int LOG_N>
__device__ __forceinline__ void fwht_rows_pipelined(const Tin* x, Tout* y, const float* __restrict__ signs,
                                                    long long rows, float scale, int signs_after) {
    using C = FwhtCfg<Tin, LOG_N>;
    static_assert(C::RPB == 1, "pipelined rows need one row per block");
    constexpr int N = C::N, V = C::V, TPR = C::TPR;
    extern __shared__ float smem[];
    const float* sin = signs_after ? nullptr : signs;
    RowPos pos;
    pos.tid = threadIdx.x;
    pos.rloc = 0;
    pos.t = threadIdx.x;
    pos.row = blockIdx.x;
    pos.live = pos.row < rows;
    float next[C::EPT];
    fwht_load<Tin, LOG_N>(x, sin, pos, next);
    const int t = pos.t;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        float r[C::EPT];
#pragma unroll
        for (int j = 0; j < C::EPT; ++j) r[j] = next[j];
        RowPos ahead = pos;
        ahead.row = row + gridDim.x;
        ahead.live = ahead.row < rows;
        fwht_load<Tin, LOG_N>(x, sin, ahead, next);
        pos.row = row;
        pos.live = true;
        fwht_transform<Tin, LOG_N>(pos, smem, r);
        Tout* yr = y + row * N;
#pragma unroll
        for (int c = 0; c < C::CH; ++c) {
            const int off = (t + TPR * c) * V;
            float o[V];
#pragma unroll
            for (int e = 0; e < V; ++e) {
                o[e] = r[c * V + e] * scale;
                if (signs != nullptr && signs_after) o[e] *= __ldg(signs + off + e);
            }
            constexpr int VO = 16 / sizeof(Tout);
#pragma unroll
            for (int e0 = 0; e0 < V; e0 += VO) {
                Vec<Tout, VO> v;
                f32_to_vec(o + e0, v);
                store16(yr + off + e0, v);
            }
        }
        // The next row's exchange must not overwrite shared memory this
        // row's threads may still be reading back.
        __syncthreads();
    }
}

#define FWHTP(T, NT, L)                                                                     \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<T, L>::BLOCK)                     \
        hadamard_p_##NT##_##L(const T* x, T* y, const float* signs, long long rows,        \
                              float scale, int signs_after, int chunks) {                  \
        fwht_rows_pipelined<T, T, L>(x, y, signs, rows, scale, signs_after);               \
    }
FWHTP(float, f32, 13)
FWHTP(float, f32, 14)
FWHTP(float, f32, 15)
FWHTP(__nv_bfloat16, bf16, 11)
FWHTP(__nv_bfloat16, bf16, 12)
FWHTP(__nv_bfloat16, bf16, 13)
FWHTP(__nv_bfloat16, bf16, 14)
FWHTP(__nv_bfloat16, bf16, 15)

// The staged transpose kernel (fwht_s.cuh): persistent blocks, rows copied
// into shared memory S − 1 row groups ahead. Same conventions as fwht_rows
// (signs on load or store, scale on store, in place safe: a row's copy
// completes before its stores).
#define FWHTS(T, NT, S, L)                                                                  \
    extern "C" __global__ void __launch_bounds__(FwhtS<T, L, S>::BLOCK, FwhtS<T, L, S>::MINB) \
        hadamard_s##S##_##NT##_##L(const T* x, T* y, const float* signs, long long rows,     \
                                   float scale, int signs_after, int chunks) {             \
        fwht_rows_staged<T, L, S>(x, y, signs, rows, scale, signs_after);                   \
    }
#define FWHTS_S(T, NT, S) \
    FWHTS(T, NT, S, 10)   \
    FWHTS(T, NT, S, 11)   \
    FWHTS(T, NT, S, 12)   \
    FWHTS(T, NT, S, 13)
FWHTS_S(float, f32, 2)
FWHTS_S(float, f32, 3)
FWHTS_S(float, f32, 4)
FWHTS(float, f32, 2, 14)
FWHTS(float, f32, 3, 14)
FWHTS_S(__nv_bfloat16, bf16, 2)
FWHTS_S(__nv_bfloat16, bf16, 3)
FWHTS_S(__nv_bfloat16, bf16, 4)
FWHTS(__nv_bfloat16, bf16, 2, 14)
FWHTS(__nv_bfloat16, bf16, 3, 14)
FWHTS(__nv_bfloat16, bf16, 4, 14)

// Tuning variants: EXTRA doublings of the elements per thread (see
// EPT_SHIFT in hadamard.rs).
#define FWHTX(T, NT, X, L)                                                                   \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<T, L, X>::BLOCK)                   \
        hadamard_x##X##_##NT##_##L(const T* x, T* y, const float* signs, long long rows,    \
                                   float scale, int signs_after, int chunks) {             \
        fwht_rows<T, T, L, X>(x, y, signs, rows, scale, signs_after, chunks);              \
    }
#define FWHTX_ALL(T, NT, X) \
    FWHTX(T, NT, X, 8)      \
    FWHTX(T, NT, X, 9)      \
    FWHTX(T, NT, X, 10)     \
    FWHTX(T, NT, X, 11)     \
    FWHTX(T, NT, X, 12)     \
    FWHTX(T, NT, X, 13)     \
    FWHTX(T, NT, X, 14)     \
    FWHTX(T, NT, X, 15)
FWHTX_ALL(float, f32, 1)
FWHTX_ALL(float, f32, 2)
FWHTX_ALL(__nv_bfloat16, bf16, 1)
FWHTX_ALL(__nv_bfloat16, bf16, 2)

// The mix. Block: 8 warps, 32 columns of the column space g = row·s + i
// (element i of every chunk of a row); warp w computes outputs a = 8·(w + 8·k)
// + 0..7 for its lane's column, from the panel z[b][lane] in shared memory
// (m × 32 floats) and M[b][a .. a + 8] as two broadcast float4 loads.
template <typename Tout>
__device__ __forceinline__ void mix_rows(const float* __restrict__ yin, Tout* __restrict__ out,
                                         const float* __restrict__ M, const float* __restrict__ signs,
                                         long long rows, int m, int m8, int s, float scale,
                                         int signs_after) {
    extern __shared__ float z[];  // [m][32]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long n = (long long)m * s;
    const long long g = (long long)blockIdx.x * 32 + lane;
    const bool valid = g < rows * s;
    const long long r = valid ? g / s : 0;
    const int i = valid ? (int)(g % s) : 0;
    for (int b = warp; b < m; b += 8) z[b * 32 + lane] = valid ? yin[r * n + (long long)b * s + i] : 0.0f;
    __syncthreads();
    for (int a0 = 8 * warp; a0 < m; a0 += 64) {
        float acc[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[k] = 0.0f;
        for (int b = 0; b < m; ++b) {
            const float zb = z[b * 32 + lane];
            const float4 p = __ldg(reinterpret_cast<const float4*>(M + (long long)b * m8 + a0));
            const float4 q = __ldg(reinterpret_cast<const float4*>(M + (long long)b * m8 + a0 + 4));
            acc[0] = fmaf(p.x, zb, acc[0]);
            acc[1] = fmaf(p.y, zb, acc[1]);
            acc[2] = fmaf(p.z, zb, acc[2]);
            acc[3] = fmaf(p.w, zb, acc[3]);
            acc[4] = fmaf(q.x, zb, acc[4]);
            acc[5] = fmaf(q.y, zb, acc[5]);
            acc[6] = fmaf(q.z, zb, acc[6]);
            acc[7] = fmaf(q.w, zb, acc[7]);
        }
        if (valid) {
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                const int a = a0 + k;
                if (a < m) {
                    const long long idx = (long long)a * s + i;
                    float v = acc[k] * scale;
                    if (signs != nullptr && signs_after) v *= __ldg(signs + idx);
                    out[r * n + idx] = from_f32<Tout>(v);
                }
            }
        }
    }
}

#define MIX(TO, NO)                                                                           \
    extern "C" __global__ void __launch_bounds__(256)                                        \
        mix_##NO(const float* yin, TO* out, const float* M, const float* signs, long long rows, \
                 int m, int m8, int s, float scale, int signs_after) {                       \
        mix_rows<TO>(yin, out, M, signs, rows, m, m8, s, scale, signs_after);                \
    }

MIX(float, f32)
MIX(__nv_bfloat16, bf16)
MIX(__half, f16)
