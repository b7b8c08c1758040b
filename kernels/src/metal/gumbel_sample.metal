// Gumbel-max sampling with Philox noise (src/sample/mod.rs). The scores are
// exact (common.metal's transcription of src/sample/noise.rs); the CUDA
// kernel's approximate-noise filter is not used, since Metal documents no
// error bound for its fast log. As in the CUDA kernel's filters, a token's
// exact score is bounded from above by fma(logit, 1/T, upper bound of its
// noise bucket) (src/sample/bound.rs; the bounds hold for all 2^32 inputs,
// checked exhaustively on the GPU against the same noise), so a token whose
// bound is below the thread's best cannot win and its two logs are skipped.
// No 64-bit atomics: each threadgroup writes its (score, token) and
// gumbel_finish reduces them per row in order.

struct GumbelParams {
    uint vocab, chunk, chunks, seed_lo, seed_hi, stream, has_thr;
    float inv_t;
};

template <typename T>
kernel void gumbel_partial(device const T* logits [[buffer(0)]], device const ulong* positions [[buffer(1)]],
                           device const float* thresholds [[buffer(2)]], device float* pscore [[buffer(3)]],
                           device uint* ptoken [[buffer(4)]], constant GumbelParams& p [[buffer(5)]],
                           uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                           uint tcount [[threads_per_threadgroup]], uint lane [[thread_index_in_simdgroup]],
                           uint sg [[simdgroup_index_in_threadgroup]], device const float* tab [[buffer(6)]]) {
    const uint row = tg.y, chunk_id = tg.x;
    const uint start = chunk_id * p.chunk;
    const uint end = min(start + p.chunk, p.vocab);
    const ulong pos = positions[row];
    const float thr = p.has_thr != 0 ? thresholds[row] : -INFINITY;
    device const T* lr = logits + ulong(row) * p.vocab;
    float best = NAN;
    uint besti = 0xffffffffu;
    for (uint q = start / 4 + tid; 4 * q < end; q += tcount) {
        const uint4 r = wb_philox(uint4(uint(pos), uint(pos >> 32), q, p.stream), p.seed_lo, p.seed_hi);
        const uint bits[4] = {r.x, r.y, r.z, r.w};
        for (uint w = 0; w < 4; ++w) {
            const uint t = 4 * q + w;
            if (t >= end) break;
            const float l = float(lr[t]);
            if (!(l >= thr)) continue;
            // Exact score ≤ upper bound < best: it cannot win, not even a tie
            // (false while best is NaN, and for NaN logits, which go on and
            // never win).
            if (fma(l, p.inv_t, tab[2 * wb_bucket(bits[w])]) < best) continue;
            const float s = fma(l, p.inv_t, wb_gumbel(bits[w]));
            if (wb_better(s, t, best, besti)) {
                best = s;
                besti = t;
            }
        }
    }
    for (ushort off = 16; off > 0; off >>= 1) {
        const float s = simd_shuffle_down(best, off);
        const uint i = simd_shuffle_down(besti, off);
        if (lane + off < 32 && wb_better(s, i, best, besti)) {
            best = s;
            besti = i;
        }
    }
    threadgroup float ws[32];
    threadgroup uint wi[32];
    if (lane == 0) {
        ws[sg] = best;
        wi[sg] = besti;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (tid == 0) {
        for (uint k = 1; k < (tcount + 31) / 32; ++k)
            if (wb_better(ws[k], wi[k], best, besti)) {
                best = ws[k];
                besti = wi[k];
            }
        pscore[ulong(row) * p.chunks + chunk_id] = best;
        ptoken[ulong(row) * p.chunks + chunk_id] = besti;
    }
}

kernel void gumbel_finish(device const float* pscore [[buffer(0)]], device const uint* ptoken [[buffer(1)]],
                          device uint* tokens [[buffer(2)]], device float* scores [[buffer(3)]],
                          constant GumbelParams& p [[buffer(4)]], constant uint& rows [[buffer(5)]],
                          uint row [[thread_position_in_grid]]) {
    if (row >= rows) return;
    float best = NAN;
    uint besti = 0xffffffffu;
    for (uint c = 0; c < p.chunks; ++c) {
        const float s = pscore[ulong(row) * p.chunks + c];
        const uint i = ptoken[ulong(row) * p.chunks + c];
        if (wb_better(s, i, best, besti)) {
            best = s;
            besti = i;
        }
    }
    tokens[row] = besti;
    scores[row] = best;
}

// The k-th largest non-NaN logit of a row by total order (radix select, 8
// bits a pass), or -inf when the row has at most k. One threadgroup a row.
inline uint wb_total_key(float f) {
    const uint b = as_type<uint>(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <typename T>
kernel void topk_threshold(device const T* logits [[buffer(0)]], device float* thresholds [[buffer(1)]],
                           constant uint& vocab [[buffer(2)]], constant uint& k [[buffer(3)]],
                           uint row [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                           uint tcount [[threads_per_threadgroup]]) {
    threadgroup atomic_uint hist[256];
    threadgroup atomic_uint count;
    threadgroup uint state[2];  // prefix, remaining k
    device const T* lr = logits + ulong(row) * vocab;
    if (tid == 0) {
        atomic_store_explicit(&count, 0u, memory_order_relaxed);
        state[0] = 0;
        state[1] = k;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    uint local = 0;
    for (uint t = tid; t < vocab; t += tcount) local += isnan(float(lr[t])) ? 0u : 1u;
    atomic_fetch_add_explicit(&count, local, memory_order_relaxed);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (atomic_load_explicit(&count, memory_order_relaxed) <= k) {
        if (tid == 0) thresholds[row] = -INFINITY;
        return;
    }
    for (int pass = 0; pass < 4; ++pass) {
        const int shift = 24 - 8 * pass;
        for (uint d = tid; d < 256; d += tcount) atomic_store_explicit(&hist[d], 0u, memory_order_relaxed);
        threadgroup_barrier(mem_flags::mem_threadgroup);
        const uint prefix = state[0];
        for (uint t = tid; t < vocab; t += tcount) {
            const float v = float(lr[t]);
            if (isnan(v)) continue;
            const uint key = wb_total_key(v);
            if (pass > 0 && (key >> (shift + 8)) != prefix) continue;
            atomic_fetch_add_explicit(&hist[(key >> shift) & 0xffu], 1u, memory_order_relaxed);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (tid == 0) {
            uint kk = state[1], cum = 0;
            int d = 255;
            for (; d > 0; --d) {
                const uint c = atomic_load_explicit(&hist[d], memory_order_relaxed);
                if (cum + c >= kk) break;
                cum += c;
            }
            state[1] = kk - cum;
            state[0] = (prefix << 8) | uint(d);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) {
        const uint key = state[0];
        thresholds[row] = as_type<float>((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
    }
}

#define GUMBEL(T, NAME)                                                                                       \
    template [[host_name("gumbel_partial_" #NAME)]] kernel void gumbel_partial<T>(                           \
        device const T*, device const ulong*, device const float*, device float*, device uint*,              \
        constant GumbelParams&, uint2, uint, uint, uint, uint, device const float*);                          \
    template [[host_name("topk_threshold_" #NAME)]] kernel void topk_threshold<T>(                           \
        device const T*, device float*, constant uint&, constant uint&, uint, uint, uint);
GUMBEL(float, f32)
GUMBEL(bfloat, bf16)
GUMBEL(half, f16)
