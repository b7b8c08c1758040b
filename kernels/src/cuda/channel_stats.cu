// Per-channel partial statistics (src/stats/mod.rs): block (blockIdx.y) of
// `block_rows` rows, one thread per channel, Pébay's one-value update in f32
// in the CPU's order; loads are coalesced across the channels of a warp.
#include "common.cuh"

using namespace wb;

template <typename T>
__device__ __forceinline__ void partials(const T* __restrict__ x, float* __restrict__ out, long long rows,
                                         int channels, int block_rows) {
    // 1/(k + 1) for every count k a block can reach: one division per table
    // entry instead of one per element (the CPU divides; results agree to
    // rounding).
    extern __shared__ float inv[];
    const int table = min(block_rows, 8192);
    for (int k = threadIdx.x; k < table; k += blockDim.x) inv[k] = 1.0f / (float)(k + 1);
    __syncthreads();
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    const long long r0 = (long long)blockIdx.y * block_rows;
    const long long r1 = min(r0 + block_rows, rows);
    float count = 0.0f, mean = 0.0f, m2 = 0.0f, m3 = 0.0f, m4 = 0.0f, absmax = 0.0f;
    // Rows in batches of B, the next batch's loads issued before this
    // batch's updates (one row at a time, each waited a memory latency: H100
    // 0.20 of copy for [16384, 4096]; batches of 8 without the overlap,
    // 0.39); the updates keep the CPU's order.
    constexpr int B = 16;
    auto load = [&](long long rb, float (&vb)[B]) {
#pragma unroll
        for (int j = 0; j < B; ++j) vb[j] = rb + j < r1 ? to_f32(x[(rb + j) * channels + c]) : __int_as_float(0x7fc00000);
    };
    float next[B];
    load(r0, next);
    for (long long rb = r0; rb < r1; rb += B) {
        float vb[B];
#pragma unroll
        for (int j = 0; j < B; ++j) vb[j] = next[j];
        if (rb + B < r1) load(rb + B, next);
#pragma unroll
        for (int j = 0; j < B; ++j) {
            const float v = vb[j];
            if (isnan(v)) continue;
            const float n1 = count;
            const float n = count + 1.0f;
            const float delta = v - mean;
            const int k = (int)count;
            const float dn = delta * (k < table ? inv[k] : 1.0f / n);
            const float dn2 = dn * dn;
            const float t1 = delta * dn * n1;
            m4 = m4 + t1 * dn2 * (n * n - 3.0f * n + 3.0f) + 6.0f * dn2 * m2 - 4.0f * dn * m3;
            m3 = m3 + t1 * dn * (n - 2.0f) - 3.0f * dn * m2;
            m2 = m2 + t1;
            mean = mean + dn;
            count = n;
            absmax = fmaxf(absmax, fabsf(v));
        }
    }
    float* o = out + ((long long)blockIdx.y * channels + c) * 6;
    o[0] = count;
    o[1] = mean;
    o[2] = m2;
    o[3] = m3;
    o[4] = m4;
    o[5] = absmax;
}

#define STATS(T, NAME)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                    \
        channel_stats_##NAME(const T* x, float* out, long long rows, int channels, int block_rows) {     \
        partials<T>(x, out, rows, channels, block_rows);                                                 \
    }

STATS(float, f32)
STATS(__nv_bfloat16, bf16)
STATS(__half, f16)
