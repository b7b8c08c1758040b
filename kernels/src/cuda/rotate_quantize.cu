// Fused Hadamard + symmetric quantization (src/quant/mod.rs has the rules).
//
// rq_<in>_<bits>_<L> / rfq_<in>_<L>: rows of N = 2^L: the butterflies of
// fwht.cuh, then, still in registers, the group absmax (in-thread for groups
// smaller than a vector; else per-vector maxima reduced by shuffles, and
// across warps through shared memory), then codes (packed) and scales, or
// code·scale (fake quant). One pass over memory: read x, write N or N/2
// bytes (or the fake-quantized row).
//
// quantize_f32_<bits> / fake_f32_<out>: the same rules on rows already rotated
// into f32 (the m·2^k path: butterflies + mix first), one warp per group.
//
// dequantize_<bits>: code·scale, elementwise.
//
// Scale, reciprocal and codes use IEEE division and rint (ties to even), as
// the CPU does; codes can still differ by one from the CPU's where the
// rotated value (summed in another order) lies on a rounding boundary.
#include "fwht.cuh"

using namespace wb;

namespace {

struct Scale {
    float scale, inv;
};

__device__ __forceinline__ Scale group_scale(float absmax, float clip, float qmax) {
    const float range = __fmul_rn(clip, absmax);
    const float scale = __fdiv_rn(range, qmax);
    const bool ok = isfinite(scale) && scale > 0.0f;
    return {scale, ok ? __fdiv_rn(qmax, range) : 0.0f};
}

__device__ __forceinline__ int code_of(float y, float inv, float qmax) {
    const float r = rintf(__fmul_rn(y, inv));
    if (isnan(r)) return 0;
    return (int)fminf(fmaxf(r, -qmax), qmax);
}

// Writes the codes of V consecutive elements at element offset `off` of a row.
template <int BITS, int V>
__device__ __forceinline__ void store_codes(uint8_t* row, int off, const int (&q)[V]) {
    if constexpr (BITS == 8) {
        if constexpr (V == 4) {
            unsigned w = 0;
#pragma unroll
            for (int e = 0; e < 4; ++e) w |= (unsigned)(q[e] & 0xff) << (8 * e);
            *reinterpret_cast<unsigned*>(row + off) = w;
        } else if constexpr (V == 8) {
            unsigned lo = 0, hi = 0;
#pragma unroll
            for (int e = 0; e < 4; ++e) lo |= (unsigned)(q[e] & 0xff) << (8 * e);
#pragma unroll
            for (int e = 0; e < 4; ++e) hi |= (unsigned)(q[e + 4] & 0xff) << (8 * e);
            *reinterpret_cast<uint2*>(row + off) = make_uint2(lo, hi);
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) row[off + e] = (uint8_t)(q[e] & 0xff);
        }
    } else {
        unsigned w = 0;
#pragma unroll
        for (int e = 0; e < V; ++e) w |= (unsigned)(q[e] & 0xf) << (4 * e);
        if constexpr (V == 8) {
            *reinterpret_cast<unsigned*>(row + off / 2) = w;
        } else if constexpr (V == 4) {
            *reinterpret_cast<unsigned short*>(row + off / 2) = (unsigned short)w;
        } else {
#pragma unroll
            for (int b = 0; b < V / 2; ++b) row[off / 2 + b] = (uint8_t)(w >> (8 * b));
        }
    }
}

// MODE 0: codes + scales (BITS 4 or 8); MODE 1: fake quant into Tout.
template <typename Tin, typename Tout, int LOG_N, int BITS, int MODE>
__device__ __forceinline__ void rotate_quantize_rows(const Tin* __restrict__ x, uint8_t* __restrict__ codes,
                                                     float* __restrict__ scales, Tout* __restrict__ fake,
                                                     const float* __restrict__ signs, long long rows, float scale,
                                                     int signs_after, int group, float clip, float qmax) {
    using C = FwhtCfg<Tin, LOG_N>;
    constexpr int N = C::N, V = C::V, EPT = C::EPT, TPR = C::TPR;
    extern __shared__ float smem[];
    const RowPos pos = row_pos<Tin, LOG_N>(rows);
    const int t = pos.t;
    float r[EPT];
    fwht_load_transform<Tin, LOG_N>(x, signs_after ? nullptr : signs, pos, smem, r);
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
#pragma unroll
        for (int e = 0; e < V; ++e) {
            float v = r[c * V + e] * scale;
            if (signs != nullptr && signs_after) v *= __ldg(signs + off + e);
            r[c * V + e] = v;
        }
    }
    // Group absmax of each register's group (group ≥ V): in the thread, then
    // across the group's threads by shuffles, then, for groups wider than a
    // warp, across warps through shared memory with one barrier. (A tree
    // over the row's vector maxima in shared memory took log2(N/V) + 2
    // barriers a row.)
    float gmax[C::CH];
    if (group >= V) {
        const int gv = group / V;  // vectors a group
#pragma unroll
        for (int c = 0; c < C::CH; ++c) {
            float m = 0.0f;
#pragma unroll
            for (int e = 0; e < V; ++e) m = fmaxf(m, fabsf(r[c * V + e]));
            gmax[c] = m;
        }
        // Vector t + TPR·c is in group (t + TPR·c) / gv: a group wider than
        // the row's threads spans aligned runs of gv / TPR values of c in
        // every thread, a narrower one aligned runs of gv threads.
#pragma unroll
        for (int h = 1; h < C::CH; h <<= 1) {
            if (h * TPR < gv) {
                float mm[C::CH];
#pragma unroll
                for (int c = 0; c < C::CH; ++c) mm[c] = fmaxf(gmax[c], gmax[c ^ h]);
#pragma unroll
                for (int c = 0; c < C::CH; ++c) gmax[c] = mm[c];
            }
        }
        const int span = gv < TPR ? gv : TPR;  // threads a group
#pragma unroll
        for (int j = 1; j < C::LANES; j <<= 1) {
            if (j < span) {
#pragma unroll
                for (int c = 0; c < C::CH; ++c) gmax[c] = fmaxf(gmax[c], __shfl_xor_sync(0xffffffffu, gmax[c], j));
            }
        }
        if constexpr (TPR > 32) {
            if (span > 32) {
                // The warps' maxima, W × CH a row, after the butterflies'
                // shared memory.
                float* wmax = smem + (C::W > 1 ? C::RPB * N : 0) + pos.rloc * (C::W * C::CH);
                const int warp = t >> 5;
                if ((t & 31) == 0) {
#pragma unroll
                    for (int c = 0; c < C::CH; ++c) wmax[warp * C::CH + c] = gmax[c];
                }
                __syncthreads();
                const int wpg = span >> 5;  // warps a group
                const int w0 = warp & ~(wpg - 1);
#pragma unroll
                for (int c = 0; c < C::CH; ++c) {
                    float m = 0.0f;
                    for (int w = w0; w < w0 + wpg; ++w) m = fmaxf(m, wmax[w * C::CH + c]);
                    gmax[c] = m;
                }
            }
        }
    }
    if (!pos.live) return;
    const long long row = pos.row;
#pragma unroll
    for (int c = 0; c < C::CH; ++c) {
        const int off = (t + TPR * c) * V;
        int q[V];
        float deq[V];
        // Each element's group absmax: the reduced vector maxima, or within
        // aligned sub-groups of the vector (unrolled, so r stays in registers).
        float m[V];
#pragma unroll
        for (int e = 0; e < V; ++e) m[e] = group >= V ? gmax[c] : fabsf(r[c * V + e]);
#pragma unroll
        for (int h = 1; h < V; h <<= 1) {
            if (h < group && group < V) {
                float mm[V];
#pragma unroll
                for (int e = 0; e < V; ++e) mm[e] = fmaxf(m[e], m[e ^ h]);
#pragma unroll
                for (int e = 0; e < V; ++e) m[e] = mm[e];
            }
        }
        if (group >= V) {
            // One group for the whole vector: two divisions per vector, not per element.
            const Scale sc = group_scale(gmax[c], clip, qmax);
#pragma unroll
            for (int e = 0; e < V; ++e) {
                q[e] = code_of(r[c * V + e], sc.inv, qmax);
                deq[e] = (float)q[e] * sc.scale;
            }
            if (MODE == 0 && off % group == 0) scales[row * (N / group) + off / group] = sc.scale;
        } else {
#pragma unroll
            for (int e = 0; e < V; ++e) {
                const Scale sc = group_scale(m[e], clip, qmax);
                q[e] = code_of(r[c * V + e], sc.inv, qmax);
                deq[e] = (float)q[e] * sc.scale;
                if (MODE == 0 && (off + e) % group == 0) scales[row * (N / group) + (off + e) / group] = sc.scale;
            }
        }
        if constexpr (MODE == 0) {
            store_codes<BITS, V>(codes + row * (N * BITS / 8), off, q);
        } else {
            Tout* fr = fake + row * N;
#pragma unroll
            for (int e = 0; e < V; ++e) fr[off + e] = from_f32<Tout>(deq[e]);
        }
    }
}

// Rows of n f32 (already rotated) → codes/scales or fake quant; one warp per
// group, 8 groups per block.
template <int BITS, int MODE, typename Tout>
__device__ __forceinline__ void quantize_rotated(const float* __restrict__ y, uint8_t* __restrict__ codes,
                                                 float* __restrict__ scales, Tout* __restrict__ fake,
                                                 long long groups_total, int group, float clip, float qmax) {
    const int lane = threadIdx.x & 31;
    const long long g = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (g >= groups_total) return;
    const float* yg = y + g * group;
    float m = 0.0f;
    for (int i = lane; i < group; i += 32) m = fmaxf(m, fabsf(yg[i]));
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    const Scale s = group_scale(m, clip, qmax);
    if (MODE == 0) {
        if (lane == 0) scales[g] = s.scale;
        if constexpr (BITS == 8) {
            for (int i = lane; i < group; i += 32) codes[g * group + i] = (uint8_t)(code_of(yg[i], s.inv, qmax) & 0xff);
        } else {
            for (int i = lane; i < group / 2; i += 32) {
                const int lo = code_of(yg[2 * i], s.inv, qmax) & 0xf;
                const int hi = code_of(yg[2 * i + 1], s.inv, qmax) & 0xf;
                codes[g * (group / 2) + i] = (uint8_t)(lo | (hi << 4));
            }
        }
    } else {
        for (int i = lane; i < group; i += 32)
            fake[g * group + i] = from_f32<Tout>((float)code_of(yg[i], s.inv, qmax) * s.scale);
    }
}

}  // namespace

// Blocks of 512 threads or more (rows of 2^14 and longer) are held to 64
// registers, two blocks a multiprocessor: left free, the 2^14 int4 and bf16
// kernels took 81–96 and ran one block, 16 warps, a multiprocessor (H100,
// kernel alone: f32 int4 0.395 → 0.267 ms, bf16 int8 0.573 → 0.398 ms a
// 256 MiB batch). Blocks of 256 are left free: held to 64 they lost 5–7 %
// at 2^10 and 2^12 (0: no minimum; 1 let the compiler take 72 where it
// took 48).
#define RQ_MIN_BLOCKS(TI, L) (FwhtCfg<TI, L>::BLOCK >= 512 ? 1024 / FwhtCfg<TI, L>::BLOCK : 0)
#define RQ(TI, NI, L)                                                                                        \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<TI, L>::BLOCK, RQ_MIN_BLOCKS(TI, L))                \
        rq8_##NI##_##L(const TI* x, uint8_t* codes, float* scales, const float* signs, long long rows,      \
                       float scale, int signs_after, int group, float clip) {                                \
        rotate_quantize_rows<TI, float, L, 8, 0>(x, codes, scales, nullptr, signs, rows, scale, signs_after, \
                                                 group, clip, 127.0f);                                       \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<TI, L>::BLOCK, RQ_MIN_BLOCKS(TI, L))                \
        rq4_##NI##_##L(const TI* x, uint8_t* codes, float* scales, const float* signs, long long rows,      \
                       float scale, int signs_after, int group, float clip) {                                \
        rotate_quantize_rows<TI, float, L, 4, 0>(x, codes, scales, nullptr, signs, rows, scale, signs_after, \
                                                 group, clip, 7.0f);                                         \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(FwhtCfg<TI, L>::BLOCK, RQ_MIN_BLOCKS(TI, L))                \
        rfq_##NI##_##L(const TI* x, TI* out, const float* signs, long long rows, float scale, int signs_after, \
                       int group, float clip, float qmax) {                                                  \
        rotate_quantize_rows<TI, TI, L, 8, 1>(x, nullptr, nullptr, out, signs, rows, scale, signs_after,     \
                                              group, clip, qmax);                                            \
    }

#define RQ_ALL(TI, NI) \
    RQ(TI, NI, 1)      \
    RQ(TI, NI, 2)      \
    RQ(TI, NI, 3)      \
    RQ(TI, NI, 4)      \
    RQ(TI, NI, 5)      \
    RQ(TI, NI, 6)      \
    RQ(TI, NI, 7)      \
    RQ(TI, NI, 8)      \
    RQ(TI, NI, 9)      \
    RQ(TI, NI, 10)     \
    RQ(TI, NI, 11)     \
    RQ(TI, NI, 12)     \
    RQ(TI, NI, 13)     \
    RQ(TI, NI, 14)     \
    RQ(TI, NI, 15)

RQ_ALL(float, f32)
RQ_ALL(__nv_bfloat16, bf16)
RQ_ALL(__half, f16)

extern "C" __global__ void __launch_bounds__(256)
    quantize_f32_8(const float* y, uint8_t* codes, float* scales, long long groups, int group, float clip) {
    quantize_rotated<8, 0, float>(y, codes, scales, nullptr, groups, group, clip, 127.0f);
}
extern "C" __global__ void __launch_bounds__(256)
    quantize_f32_4(const float* y, uint8_t* codes, float* scales, long long groups, int group, float clip) {
    quantize_rotated<4, 0, float>(y, codes, scales, nullptr, groups, group, clip, 7.0f);
}

#define FAKE(TO, NO)                                                                                         \
    extern "C" __global__ void __launch_bounds__(256)                                                        \
        fake_f32_##NO(const float* y, TO* out, long long groups, int group, float clip, float qmax) {        \
        quantize_rotated<8, 1, TO>(y, nullptr, nullptr, out, groups, group, clip, qmax);                     \
    }
FAKE(float, f32)
FAKE(__nv_bfloat16, bf16)
FAKE(__half, f16)

// code·scale for `total` elements of rows of n, groups of `group`.
extern "C" __global__ void dequantize_8(const uint8_t* codes, const float* scales, float* out, long long total,
                                        int group) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x)
        out[i] = (float)(signed char)codes[i] * scales[i / group];
}
extern "C" __global__ void dequantize_4(const uint8_t* codes, const float* scales, float* out, long long total,
                                        int group) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int nib = (codes[i / 2] >> (4 * (i % 2))) & 0xf;
        out[i] = (float)((nib ^ 8) - 8) * scales[i / group];
    }
}
