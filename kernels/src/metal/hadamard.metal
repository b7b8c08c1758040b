// Fast normalised Hadamard transform of rows, n = m·2^k (src/hadamard/mod.rs
// has the convention). Metal's threadgroup memory (32 KiB) holds 4096 f32 of
// a row at a time, so:
//   fwht_block: the butterflies inside blocks of B = min(s, 4096) elements of
//     each length-s chunk, in threadgroup memory (signs on load for the
//     forward transform); when B = s and m = 1 it also scales, applies the
//     transposed signs and converts: the whole transform in one pass;
//   fwht_cross: the remaining levels (distances B, 2B, … < s, at most 8
//     elements per thread for s ≤ 2^15), on the f32 intermediate;
//   mix: the m×m mix for m > 1, M[b][a] = coefficient of input chunk b in
//     output a (m × m8, as on CUDA).
// Like the CUDA transpose kernels (fwht_t.cuh), fwht_block does up to five
// levels in registers per pass over threadgroup memory; unlike CUDA it needs
// fwht_cross for s > 4096. It has not been run (no Apple GPU was
// available), only written to mirror the CUDA results.

struct FwhtParams {
    uint n;         // chunk length s (a power of two)
    uint block;     // B
    uint rows;      // chunks in all (rows · m)
    uint chunks;    // m: chunk j of a row uses signs j·s ..
    float scale;
    uint final_;    // 1: this pass finishes the transform
    uint signs_after;
    uint has_signs;
};

template <typename Tin, typename Tout>
kernel void fwht_block(device const Tin* x [[buffer(0)]], device Tout* y [[buffer(1)]],
                       device const float* signs [[buffer(2)]], constant FwhtParams& p [[buffer(3)]],
                       threadgroup float* tg [[threadgroup(0)]], uint gid [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]], uint tcount [[threads_per_threadgroup]]) {
    const uint per_row = p.n / p.block;
    const uint row = gid / per_row;
    if (row >= p.rows) return;
    const uint b0 = (gid % per_row) * p.block;
    const ulong base = ulong(row) * p.n + b0;
    device const float* sg = signs + ulong(row % p.chunks) * p.n + b0;
    for (uint i = tid; i < p.block; i += tcount) {
        float v = float(x[base + i]);
        if (p.has_signs != 0 && p.signs_after == 0) v *= sg[i];
        tg[i] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // Up to five levels per pass over threadgroup memory, as the CUDA
    // transpose kernels (fwht_t.cuh) do: each thread takes groups of 2^lg
    // elements that differ only in index bits h0 .. h0 + lg - 1, does their
    // butterflies in registers and writes them back; one barrier per pass
    // instead of one per level.
    const uint levels = ctz(p.block);
    for (uint h0 = 0; h0 < levels; h0 += 5) {
        const uint lg = min(5u, levels - h0);
        const uint g = 1u << lg;
        const uint low = (1u << h0) - 1u;
        for (uint gi = tid; gi < (p.block >> lg); gi += tcount) {
            const uint base = (gi & low) | ((gi >> h0) << (h0 + lg));
            float v[32];
            for (uint j = 0; j < g; ++j) v[j] = tg[base + (j << h0)];
            for (uint h = 1; h < g; h <<= 1)
                for (uint j = 0; j < g; ++j)
                    if ((j & h) == 0) {
                        const float a = v[j], b = v[j + h];
                        v[j] = a + b;
                        v[j + h] = a - b;
                    }
            for (uint j = 0; j < g; ++j) tg[base + (j << h0)] = v[j];
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (uint i = tid; i < p.block; i += tcount) {
        float v = tg[i];
        if (p.final_ != 0) {
            v *= p.scale;
            if (p.has_signs != 0 && p.signs_after != 0) v *= sg[i];
        }
        y[base + i] = Tout(v);
    }
}

// Levels at distances B .. s/2 of each chunk, in place on f32 `mid`, then
// (final) scale, transposed signs and conversion into `y`.
template <typename Tout>
kernel void fwht_cross(device float* mid [[buffer(0)]], device Tout* y [[buffer(1)]],
                       device const float* signs [[buffer(2)]], constant FwhtParams& p [[buffer(3)]],
                       uint g [[thread_position_in_grid]]) {
    const uint t = p.n / p.block;  // ≤ 8 for s ≤ 2^15
    const uint row = g / p.block, j = g % p.block;
    if (row >= p.rows) return;
    const ulong base = ulong(row) * p.n + j;
    float v[8];
    for (uint k = 0; k < t; ++k) v[k] = mid[base + ulong(k) * p.block];
    for (uint h = 1; h < t; h <<= 1)
        for (uint k = 0; k < t; ++k)
            if ((k & h) == 0) {
                const float a = v[k], b = v[k + h];
                v[k] = a + b;
                v[k + h] = a - b;
            }
    device const float* sg = signs + ulong(row % p.chunks) * p.n + j;
    for (uint k = 0; k < t; ++k) {
        float o = v[k];
        if (p.final_ != 0) {
            o *= p.scale;
            if (p.has_signs != 0 && p.signs_after != 0) o *= sg[k * p.block];
        }
        if (p.final_ != 0) y[base + ulong(k) * p.block] = Tout(o);
        else mid[base + ulong(k) * p.block] = o;
    }
}

struct MixParams {
    uint rows, m, m8, s;
    float scale;
    uint signs_after, has_signs;
};

// One thread per (column g = row·s + i, output chunk a).
template <typename Tout>
kernel void mix(device const float* mid [[buffer(0)]], device Tout* y [[buffer(1)]],
                device const float* M [[buffer(2)]], device const float* signs [[buffer(3)]],
                constant MixParams& p [[buffer(4)]], uint2 gi [[thread_position_in_grid]]) {
    const ulong g = gi.x;
    const uint a = gi.y;
    if (g >= ulong(p.rows) * p.s || a >= p.m) return;
    const ulong r = g / p.s, i = g % p.s, n = ulong(p.m) * p.s;
    float acc = 0.0f;
    for (uint b = 0; b < p.m; ++b) acc = fma(M[ulong(b) * p.m8 + a], mid[r * n + ulong(b) * p.s + i], acc);
    float v = acc * p.scale;
    if (p.has_signs != 0 && p.signs_after != 0) v *= signs[ulong(a) * p.s + i];
    y[r * n + ulong(a) * p.s + i] = Tout(v);
}

#define FWHT_BLOCK(TI, TO, NI, NO)                                                                     \
    template [[host_name("fwht_block_" #NI "_" #NO)]] kernel void fwht_block<TI, TO>(                 \
        device const TI*, device TO*, device const float*, constant FwhtParams&, threadgroup float*,    \
        uint, uint, uint);
FWHT_BLOCK(float, float, f32, f32)
FWHT_BLOCK(bfloat, bfloat, bf16, bf16)
FWHT_BLOCK(half, half, f16, f16)
FWHT_BLOCK(bfloat, float, bf16, f32)
FWHT_BLOCK(half, float, f16, f32)

#define CROSS_MIX(TO, NO)                                                                                   \
    template [[host_name("fwht_cross_" #NO)]] kernel void fwht_cross<TO>(device float*, device TO*,        \
                                                                          device const float*,              \
                                                                          constant FwhtParams&, uint);      \
    template [[host_name("mix_" #NO)]] kernel void mix<TO>(device const float*, device TO*,                \
                                                            device const float*, device const float*,       \
                                                            constant MixParams&, uint2);
CROSS_MIX(float, f32)
CROSS_MIX(bfloat, bf16)
CROSS_MIX(half, f16)
