// The butterfly core shared by hadamard.cu and rotate_quantize.cu.
#pragma once
#include "common.cuh"

namespace wb {

// EXTRA doubles the elements per thread EXTRA times (a tuning variant).
template <typename Tin, int LOG_N, int EXTRA = 0>
struct FwhtCfg {
    static constexpr int N = 1 << LOG_N;
    static constexpr int LOG_VEC = sizeof(Tin) == 4 ? 2 : 3;
    static constexpr int LOG_V = LOG_N < LOG_VEC ? LOG_N : LOG_VEC;
    static constexpr int V = 1 << LOG_V;
    // EPT ≥ sqrt(N / 32) makes the warps of a row (W = N / (32·EPT)) at most EPT.
    static constexpr int LOG_EPT_MIN = LOG_N >= 5 ? (LOG_N - 4) / 2 : 0;
    static constexpr int LOG_EPT_BASE = (LOG_EPT_MIN > LOG_V ? LOG_EPT_MIN : LOG_V) + EXTRA;
    static constexpr int LOG_EPT = LOG_EPT_BASE < LOG_N ? LOG_EPT_BASE : LOG_N;
    static constexpr int EPT = 1 << LOG_EPT;
    static constexpr int TPR = N / EPT;
    static constexpr int CH = EPT / V;
    static constexpr int W = TPR >= 32 ? TPR / 32 : 1;
    static constexpr int RPB = TPR >= 256 ? 1 : 256 / TPR;
    static constexpr int BLOCK = RPB * TPR;
    static constexpr int LANES = TPR < 32 ? TPR : 32;
};

template <int K>
__device__ __forceinline__ void fwht_regs(float (&r)[K]) {
#pragma unroll
    for (int h = 1; h < K; h <<= 1) {
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

// Where a thread's row and registers are: see the file comment of hadamard.cu.
struct RowPos {
    int tid, rloc, t;
    long long row;
    bool live;
};

template <typename Tin, int LOG_N, int EXTRA = 0>
__device__ __forceinline__ RowPos row_pos(long long rows) {
    using C = FwhtCfg<Tin, LOG_N, EXTRA>;
    RowPos p;
    p.tid = threadIdx.x;
    p.rloc = p.tid / C::TPR;
    p.t = p.tid % C::TPR;
    p.row = (long long)blockIdx.x * C::RPB + p.rloc;
    p.live = p.row < rows;
    return p;
}

// Loads the thread's elements of its row into r (load layout; signs applied
// if `signs`); zeros for a row past the end.
template <typename Tin, int LOG_N, int EXTRA = 0>
__device__ __forceinline__ void fwht_load(const Tin* x, const float* __restrict__ signs, const RowPos& pos,
                                          float (&r)[FwhtCfg<Tin, LOG_N, EXTRA>::EPT]) {
    using C = FwhtCfg<Tin, LOG_N, EXTRA>;
    constexpr int N = C::N, V = C::V, TPR = C::TPR;
    const int t = pos.t;
    const Tin* xr = x + pos.row * N;
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
        if (pos.live) {
            if constexpr (V * sizeof(Tin) == 16) {
                Vec<Tin, V> v = *reinterpret_cast<const Vec<Tin, V>*>(xr + off);
                vec_to_f32(v, r + c * V);
            } else {
#pragma unroll
                for (int e = 0; e < V; ++e) r[c * V + e] = to_f32(xr[off + e]);
            }
            if (signs != nullptr) {
#pragma unroll
                for (int e = 0; e < V; ++e) r[c * V + e] *= __ldg(signs + off + e);
            }
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) r[c * V + e] = 0.0f;
        }
    }
}

// All the butterflies of the row held in r (load layout, unscaled). All
// threads of the block must call it (it synchronises when W > 1).
template <typename Tin, int LOG_N, int EXTRA = 0>
__device__ __forceinline__ void fwht_transform(const RowPos& pos, float* smem,
                                               float (&r)[FwhtCfg<Tin, LOG_N, EXTRA>::EPT]) {
    using C = FwhtCfg<Tin, LOG_N, EXTRA>;
    constexpr int N = C::N, V = C::V, EPT = C::EPT, TPR = C::TPR, W = C::W;
    const int tid = pos.tid, rloc = pos.rloc, t = pos.t;

    fwht_regs<EPT>(r);

    const int lane = tid & 31;
#pragma unroll
    for (int j = 1; j < C::LANES; j <<= 1) {
        const bool upper = (lane & j) != 0;
#pragma unroll
        for (int k = 0; k < EPT; ++k) {
            float p = __shfl_xor_sync(0xffffffffu, r[k], j);
            r[k] = upper ? p - r[k] : r[k] + p;
        }
    }

    if constexpr (W > 1) {
        float* srow = smem + rloc * N;
#pragma unroll
        for (int c = 0; c < C::CH; ++c) {
            const int off = (t + TPR * c) * V;
#pragma unroll
            for (int e = 0; e < V; e += 4) {
                *reinterpret_cast<float4*>(srow + off + e) =
                    make_float4(r[c * V + e], r[c * V + e + 1], r[c * V + e + 2], r[c * V + e + 3]);
            }
        }
        __syncthreads();
        constexpr int GPT = EPT / W;
        constexpr int LOG_V = C::LOG_V;
#pragma unroll
        for (int q = 0; q < GPT; ++q) {
            const int gi = t + TPR * q;
            const int e = gi & (V - 1);
            const int ln = (gi >> LOG_V) & 31;
            const int c = gi >> (LOG_V + 5);
            const int base = e + V * (ln + 32 * W * c);
            float g[W];
#pragma unroll
            for (int w = 0; w < W; ++w) g[w] = srow[base + w * 32 * V];
            fwht_regs<W>(g);
#pragma unroll
            for (int w = 0; w < W; ++w) srow[base + w * 32 * V] = g[w];
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < C::CH; ++c) {
            const int off = (t + TPR * c) * V;
#pragma unroll
            for (int e = 0; e < V; e += 4) {
                float4 v = *reinterpret_cast<const float4*>(srow + off + e);
                r[c * V + e] = v.x;
                r[c * V + e + 1] = v.y;
                r[c * V + e + 2] = v.z;
                r[c * V + e + 3] = v.w;
            }
        }
    }
}

// Load, then all the butterflies.
template <typename Tin, int LOG_N, int EXTRA = 0>
__device__ __forceinline__ void fwht_load_transform(const Tin* x, const float* __restrict__ signs_in,
                                                    const RowPos& pos, float* smem,
                                                    float (&r)[FwhtCfg<Tin, LOG_N, EXTRA>::EPT]) {
    fwht_load<Tin, LOG_N, EXTRA>(x, signs_in, pos, r);
    fwht_transform<Tin, LOG_N, EXTRA>(pos, smem, r);
}

}  // namespace wb
