// The top-k threshold of the sampler: the k-th largest non-NaN logit of a
// row by total_cmp, or −inf when the row has at most k (src/sample/cpu.rs
// keeps every token at or above it, ties included). Included by
// gumbel_sample.cu inside its anonymous namespace, after total_key and
// from_total_key.
//
// A radix select on total_key, 8 bits a pass, one block a row, made cheap
// for small k by a pivot: the r-th largest of about blockDim.x evenly spaced
// samples, r chosen so that about 4k of the row lie at or above it. One pass
// over the row counts its non-NaN logits and copies the keys at or above
// the pivot into shared memory; when there are at least k of them (so the
// k-th largest is among them) and they fit (TOPK_CAP), the radix select runs
// on that copy. Otherwise (a pivot that missed, or k large) it runs over
// the row, four passes. Loads go TOPK_TB a thread at a time, all in flight
// together.
//
// H100, [64, 131072] f32, k = 50 (a call including the sampling kernel,
// 0.024 ms of it): 0.255 ms with one load at a time and five passes over
// the row (a count, then four), 0.174 ms with the loads batched, 0.201 ms
// when the first pass's bucket was copied to shared memory instead (the
// histograms then shared by four warps each, to fit: their atomics, not the
// loads, were the cost), 0.091 ms with the pivot.

constexpr int TOPK_TB = 8;
constexpr int TOPK_HISTS = 8;        // histograms, shared by the warps in turn
constexpr unsigned TOPK_CAP = 8192;  // keys copied to shared memory

template <typename T>
__device__ __forceinline__ void topk_threshold(const T* __restrict__ logits, float* __restrict__ thresholds,
                                               unsigned vocab, unsigned k) {
    __shared__ unsigned hist[TOPK_HISTS][256];
    __shared__ unsigned total[256];
    __shared__ unsigned state[4];  // prefix, rank left, non-NaN count, kept keys
    __shared__ unsigned kept[TOPK_CAP];
    const T* lr = logits + (unsigned long long)blockIdx.x * vocab;
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // Counts digit (256: none) into the warp's histogram; warp-converged.
    auto add = [&](unsigned digit) {
        const unsigned peers = __match_any_sync(0xffffffffu, digit);
        if (digit < 256 && lane == __ffs(peers) - 1) atomicAdd(&hist[warp % TOPK_HISTS][digit], __popc(peers));
    };
    auto clear = [&]() {
        for (int b = threadIdx.x; b < TOPK_HISTS * 256; b += blockDim.x) (&hist[0][0])[b] = 0;
        __syncthreads();
    };
    // Sums the histograms, picks the digit of the rank-th largest under the
    // prefix and extends the prefix.
    auto choose = [&]() {
        __syncthreads();
        for (int d = threadIdx.x; d < 256; d += blockDim.x) {
            unsigned s = 0;
#pragma unroll
            for (int h = 0; h < TOPK_HISTS; ++h) s += hist[h][d];
            total[d] = s;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned kk = state[1], cum = 0;
            int d = 255;
            for (; d > 0; --d) {
                if (cum + total[d] >= kk) break;
                cum += total[d];
            }
            state[1] = kk - cum;
            state[0] = (state[0] << 8) | (unsigned)d;
        }
        __syncthreads();
    };
    // The row in batches: f(key, valid) for every element, warp-converged
    // (NaN and past the end: valid false).
    auto over_row = [&](auto&& f) {
        const unsigned rounds = (vocab + blockDim.x - 1) / blockDim.x;
        for (unsigned rd0 = 0; rd0 < rounds; rd0 += TOPK_TB) {
            float v[TOPK_TB];
#pragma unroll
            for (int j = 0; j < TOPK_TB; ++j) {
                const unsigned t = (rd0 + j) * blockDim.x + threadIdx.x;
                v[j] = t < vocab ? to_f32(lr[t]) : __int_as_float(0x7fc00000);
            }
#pragma unroll
            for (int j = 0; j < TOPK_TB; ++j) f(total_key(v[j]), !isnan(v[j]));
        }
    };
    // Appends key to kept when mine (warp-aggregated; counts past the cap).
    auto keep = [&](unsigned key, bool mine) {
        const unsigned mask = __ballot_sync(0xffffffffu, mine);
        unsigned base = 0;
        if (lane == 0 && mask != 0) base = atomicAdd(&state[3], __popc(mask));
        base = __shfl_sync(0xffffffffu, base, 0);
        const unsigned i = base + __popc(mask & ((1u << lane) - 1u));
        if (mine && i < TOPK_CAP) kept[i] = key;
    };
    // The rank-th largest of the n keys of kept (1 ≤ rank ≤ n ≤ TOPK_CAP),
    // or of the row's non-NaN keys (rank ≤ their count) when n is ~0u.
    auto select = [&](unsigned n, unsigned rank) {
        if (threadIdx.x == 0) state[0] = 0, state[1] = rank;
        for (int pass = 0; pass < 4; ++pass) {
            const int shift = 24 - 8 * pass;
            clear();
            const unsigned prefix = state[0];
            auto digit = [&](unsigned key, bool ok) {
                return ok && (pass == 0 || (key >> (shift + 8)) == prefix) ? (key >> shift) & 0xffu : 256u;
            };
            if (n != ~0u) {
                for (unsigned i0 = 0; i0 < n; i0 += blockDim.x) {
                    const unsigned i = i0 + threadIdx.x;
                    add(digit(i < n ? kept[i] : 0u, i < n));
                }
            } else {
                over_row([&](unsigned key, bool ok) { add(digit(key, ok)); });
            }
            choose();
        }
        return state[0];
    };
    // The samples: element ⌊i·vocab/S⌋ for i < S = min(vocab, blockDim.x).
    if (threadIdx.x == 0) state[3] = 0;
    __syncthreads();
    {
        const unsigned samples = min(vocab, blockDim.x);
        const unsigned i = threadIdx.x;
        const float v = i < samples ? to_f32(lr[(unsigned long long)i * vocab / samples]) : __int_as_float(0x7fc00000);
        keep(total_key(v), !isnan(v));
    }
    __syncthreads();
    const unsigned ns = state[3];
    // r of the ns samples lie at or above the pivot, so about r/ns of the
    // row does: r = 4 + ⌈4k·ns/vocab⌉ puts about 4k + 4·vocab/ns there.
    const unsigned long long want = 4ull + (4ull * k * ns + vocab - 1) / vocab;
    const unsigned r = (unsigned)min((unsigned long long)ns, want);
    const unsigned pivot = ns == 0 ? 0u : select(ns, r);
    __syncthreads();
    if (threadIdx.x == 0) state[3] = 0;
    __syncthreads();
    // One pass: the non-NaN count, and the keys at or above the pivot.
    unsigned nn = 0;
    over_row([&](unsigned key, bool ok) {
        nn += ok;
        keep(key, ok && key >= pivot);
    });
    for (int off = 16; off > 0; off >>= 1) nn += __shfl_down_sync(0xffffffffu, nn, off);
    if (threadIdx.x == 0) state[2] = 0;
    __syncthreads();
    if (lane == 0) atomicAdd(&state[2], nn);
    __syncthreads();
    if (state[2] <= k) {
        if (threadIdx.x == 0) thresholds[blockIdx.x] = -INFINITY;
        return;
    }
    const unsigned m = state[3];
    const unsigned key = m >= k && m <= TOPK_CAP ? select(m, k) : select(~0u, k);
    if (threadIdx.x == 0) thresholds[blockIdx.x] = from_total_key(key);
}
