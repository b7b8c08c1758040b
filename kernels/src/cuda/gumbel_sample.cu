// Gumbel-max sampling with Philox noise; see src/sample/mod.rs and
// src/sample/noise.rs, which these functions transcribe step by step.
//
// Exactness: every floating-point step of the score is an explicit
// __fmaf_rn / __fmul_rn / __fadd_rn / __fsub_rn (never contracted or
// reordered by nvcc), constants are given by their bits, and integer-to-float
// conversions are of values below 2^24 (exact). So scores are the CPU's bits.
//
// Speed: the exact noise costs two software logarithms per token. Each token
// first gets a cheap approximation with the hardware __log2f (error at most
// 2^-12 for every input, checked exhaustively by `gumbel_margin_check`), and
// each thread keeps one candidate with bounds on its exact score: a token
// whose approximate score + margin is below the candidate's lower bound is
// skipped, one whose approximate score - margin is above the candidate's
// upper bound replaces it, and only the rare token in between gets exact
// scores (its own and the candidate's). At the end only the lanes whose
// candidate may still be the warp's best compute an exact score (usually one
// per warp). Skipping never changes the winner.
//
// Before that, the `gumbel_tab2*` kernels filter by bounds of G per bucket
// of the Philox bits x (src/sample/bound.rs; G is increasing in x, and the
// bounds are checked against the exact G for all 2^32 inputs by
// `gumbel_table_check`): fma(l, 1/T, bound) bounds the exact score on each
// side (fma is monotone in its addend). Each step a thread holds 16 (or 8)
// tokens in registers. Pass 1 takes the best lower bound over the warp's
// tokens, the previous steps' and, through shared memory without barriers,
// the other warps' of the block: the lower bound of some kept token's exact
// score. Pass 2 keeps only the tokens whose upper bound reaches it and the
// thread's own candidate's lower bound, rarely more than one per warp and
// step, so the slow path above (approximate noise,
// candidate bounds, exact scores for near-ties) runs rarely and the common
// path is Philox plus two table loads and fmas per token. A dropped token
// scores strictly below a kept one (the one with the warp's best lower
// bound is always kept), so it cannot win. A per-thread filter (skip a
// token whose upper bound is below the thread's candidate) did not work:
// a warp runs the slow path whenever any lane does, and with 64 tokens a
// thread some lane nearly always does (H100: 73.5 → 69 instructions a
// token, no faster).
//
// One launch per call (up to MAXR rows): positions and the Philox round keys
// come as kernel parameters, and the last block of each row (the one whose
// compare-and-swap completes the row's count, see the end of gumbel_main)
// writes the token and its exact score and resets the row's word to zero,
// so the cached scratch is ready for the next call with no memset.
#include "common.cuh"

using namespace wb;

namespace {

constexpr unsigned M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;

constexpr int MAXR = 128;

// Kernel parameters: positions of up to MAXR rows and the ten round keys of
// each half of the Philox key (constant for a call, so they are read from
// the parameter bank instead of being recomputed per block).
struct GumbelArgs {
    unsigned long long pos[MAXR];
    unsigned k0[10];
    unsigned k1[10];
};

__device__ __forceinline__ uint4 philox_k(uint4 c, const GumbelArgs& a) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        const unsigned hi0 = __umulhi(M0, c.x), lo0 = M0 * c.x;
        const unsigned hi1 = __umulhi(M1, c.z), lo1 = M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ a.k0[round], lo1, hi0 ^ c.w ^ a.k1[round], lo0);
    }
    return c;
}

__device__ __forceinline__ float bits_f(unsigned b) { return __uint_as_float(b); }

__device__ __forceinline__ float log_exact(float x) {
    const unsigned bits = __float_as_uint(x);
    int e = (int)((bits >> 23) & 0xffu) - 127;
    float m = __uint_as_float((bits & 0x007fffffu) | 0x3f800000u);
    if (m > bits_f(0x3fb504f3u)) {
        m = __fmul_rn(m, 0.5f);
        e += 1;
    }
    const float f = __fsub_rn(m, 1.0f);
    const float z = __fmul_rn(f, f);
    float p = bits_f(0x3d9021bbu);
    p = __fmaf_rn(p, f, bits_f(0xbdebd1b8u));
    p = __fmaf_rn(p, f, bits_f(0x3def251au));
    p = __fmaf_rn(p, f, bits_f(0xbdfe5d4fu));
    p = __fmaf_rn(p, f, bits_f(0x3e11e9bfu));
    p = __fmaf_rn(p, f, bits_f(0xbe2aae50u));
    p = __fmaf_rn(p, f, bits_f(0x3e4cceacu));
    p = __fmaf_rn(p, f, bits_f(0xbe7ffffcu));
    p = __fmaf_rn(p, f, bits_f(0x3eaaaaaau));
    const float ef = __int2float_rn(e);
    float y = __fmul_rn(__fmul_rn(f, z), p);
    y = __fmaf_rn(ef, bits_f(0xb95e8083u), y);
    y = __fmaf_rn(-0.5f, z, y);
    const float r = __fadd_rn(f, y);
    return __fmaf_rn(ef, bits_f(0x3f318000u), r);
}

__device__ __forceinline__ float u31_to_f32(unsigned x) {
    return __fmaf_rn(__uint2float_rn(x >> 8), 256.0f, __uint2float_rn(x & 0xffu));
}

__device__ __forceinline__ float neg_log_uniform(unsigned x) {
    const float two_m32 = bits_f(0x2f800000u);
    if (x < 0x80000000u) {
        const float u = __fmul_rn(__fadd_rn(u31_to_f32(x), 0.5f), two_m32);
        return -log_exact(u);
    }
    const float v = __fmul_rn(__fadd_rn(u31_to_f32(~x), 0.5f), two_m32);
    if (v <= 0.0625f) {
        float s = 0.125f;
        s = __fmaf_rn(s, v, bits_f(0x3e124925u));
        s = __fmaf_rn(s, v, bits_f(0x3e2aaaabu));
        s = __fmaf_rn(s, v, bits_f(0x3e4ccccdu));
        s = __fmaf_rn(s, v, 0.25f);
        s = __fmaf_rn(s, v, bits_f(0x3eaaaaabu));
        s = __fmaf_rn(s, v, 0.5f);
        s = __fmaf_rn(s, v, 1.0f);
        return __fmul_rn(s, v);
    }
    return -log_exact(__fsub_rn(1.0f, v));
}

__device__ __forceinline__ float gumbel_exact(unsigned x) { return -log_exact(neg_log_uniform(x)); }

// Approximate G for every input (never NaN). E = -ln u: for u ≤ 1/2 from
// __log2f(u); for u > 1/2 from v = 1 - u (exact from ~x, as the exact path
// does), by __log2f(1 - v), or by the series v + v²/2 + v³/3 + v⁴/4 when
// v < 2^-5, where __log2f near 1 would lose E's relative accuracy.
__device__ __forceinline__ float gumbel_approx(unsigned x) {
    const float ln2 = 0.6931471805599453f;
    const bool lo = x < 0x80000000u;
    const unsigned y = lo ? x : ~x;
    const float f = ((float)y + 0.5f) * 2.3283064365386963e-10f;
    const float e1 = -__log2f(lo ? f : 1.0f - f) * ln2;
    const float e2 = f * (1.0f + f * (0.5f + f * (0.33333334f + f * 0.25f)));
    const float e = (!lo && f < 0.03125f) ? e2 : e1;
    return -__log2f(e) * ln2;
}

// |G_approx − G| ≤ 2^-12 (checked by gumbel_margin_check);
// the margin also covers the score's own roundings.
__device__ __forceinline__ float margin(float s) { return 0.0009765625f + fabsf(s) * 2.384185791015625e-07f; }

// Whether (s, i) beats (b, j): higher score, then lower index; NaN never wins.
__device__ __forceinline__ bool better(float s, unsigned i, float b, unsigned j) {
    if (isnan(s)) return false;
    if (isnan(b)) return true;
    return s > b || (s == b && i < j);
}

// Order-preserving key of a score (−0 taken as +0, as `better` compares).
__device__ __forceinline__ unsigned ordered(float f) {
    const unsigned b = __float_as_uint(f == 0.0f ? 0.0f : f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The total order of f32::total_cmp (−0 below +0), for the top-k threshold.
__device__ __forceinline__ unsigned total_key(float f) {
    const unsigned b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float from_total_key(unsigned k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Four logits from t0 by one vector load (aligned, all in the row).
template <typename T>
__device__ __forceinline__ void load4v(const T* row, unsigned t0, float (&l)[4]) {
    if constexpr (sizeof(T) == 4) {
        const float4 v = *reinterpret_cast<const float4*>(row + t0);
        l[0] = v.x, l[1] = v.y, l[2] = v.z, l[3] = v.w;
    } else {
        const Vec<T, 4> v = *reinterpret_cast<const Vec<T, 4>*>(row + t0);
#pragma unroll
        for (int w = 0; w < 4; ++w) l[w] = to_f32(v.v[w]);
    }
}

template <typename T>
__device__ __forceinline__ void load4(const T* row, unsigned t0, unsigned end, bool vec, float (&l)[4]) {
    if (vec && t0 + 4 <= end) {
        load4v(row, t0, l);
    } else {
#pragma unroll
        for (int w = 0; w < 4; ++w) l[w] = t0 + w < end ? to_f32(row[t0 + w]) : __int_as_float(0x7fc00000);
    }
}

// G groups of four logits, group g from token 4·(q + g·blockDim.x); NaN
// past the end.
template <typename T, int G>
__device__ __forceinline__ void load_groups(const T* row, unsigned q, unsigned end, bool vec, float (&l)[G][4]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const unsigned qg = q + g * blockDim.x;
        if (4 * qg < end) {
            load4(row, 4 * qg, end, vec, l[g]);
        } else {
#pragma unroll
            for (int w = 0; w < 4; ++w) l[g][w] = __int_as_float(0x7fc00000);
        }
    }
}

// The thread's running candidate: token ci (0xffffffff: none yet), its
// Philox bits and logit, and bounds lb ≤ exact score ≤ ub (equal once known).
struct Cand {
    float lb, ub, l;
    unsigned i, bits;
    bool known;
};

// Exact score of a token from its logit and noise bits. Not inlined: the
// exact noise is ~100 instructions and is needed rarely; inlined into every
// unrolled token of the loop it made the kernel 100 KB of code, and the
// kernel took 36.4 µs instead of 31.1 on the H100 (runs on two machines).
__device__ __noinline__ float exact_score(float l, float inv_t, unsigned bits) {
    return __fmaf_rn(l, inv_t, gumbel_exact(bits));
}

// The rare case of `consider`: the token's approximate score is within the
// margins of the candidate's bounds, so both get exact scores.
__device__ __noinline__ Cand resolve(Cand c, float l, unsigned i, unsigned bits, float inv_t) {
    if (!c.known) {
        const float e = exact_score(c.l, inv_t, c.bits);
        c.lb = c.ub = e;
        c.known = true;
    }
    const float e = exact_score(l, inv_t, bits);
    if (better(e, i, c.lb, c.i)) c = {e, e, l, i, bits, true};
    return c;
}

// Offers token i (logit l, noise bits) to the candidate; see the file comment.
template <bool EXACT_ONLY>
__device__ __forceinline__ void consider(Cand& c, float l, unsigned i, unsigned bits, float inv_t) {
    if (EXACT_ONLY) {
        const float e = exact_score(l, inv_t, bits);
        if (c.i == 0xffffffffu || better(e, i, c.lb, c.i)) c = {e, e, l, i, bits, true};
        return;
    }
    const float sa = fmaf(l, inv_t, gumbel_approx(bits));
    const float m = margin(sa);
    // The common case first: below the candidate (false while there is none,
    // since lb starts as NaN).
    if (sa + m < c.lb) return;
    if (c.i == 0xffffffffu || sa - m > c.ub) {
        c = {sa - m, sa + m, l, i, bits, false};
        return;
    }
    c = resolve(c, l, i, bits, inv_t);
}

// The bucket of Philox bits x in the bound table (src/sample/bound.rs): the
// top 10 bits; the top 8 of those buckets (x ≥ 0xfe000000: v = 1 − u <
// 2^−7, where the winners' noise is and where G = −ln(−ln u) ≈ −ln v
// changes fast) split again by the next 10 bits (1024 + that).
__device__ __forceinline__ unsigned bucket(unsigned x) {
    return x >= 0xfe000000u ? 1024u + ((x >> 15) & 1023u) : x >> 22;
}
constexpr int BUCKETS = 2048;

// Copies the bucket table (upper and lower bounds interleaved) into shared
// memory, every load of the thread issued before its first store: a loop
// that stored each value before loading the next waited a global-memory
// latency per iteration (8 at 256 threads), about 5000 cycles at the start of
// every block, all blocks at once (Nsight Compute: 510 of 2936 stall samples
// of the kernel there).
__device__ __forceinline__ void load_table(const float* __restrict__ tab, float* tab_hi, float* tab_lo) {
    constexpr int PER = BUCKETS / 2 / 256;  // float4s (two buckets each) a thread at 256 threads
    const float4* t4 = reinterpret_cast<const float4*>(tab);
    if (blockDim.x == 256) {
        float4 v[PER];
#pragma unroll
        for (int j = 0; j < PER; ++j) v[j] = t4[threadIdx.x + 256 * j];
#pragma unroll
        for (int j = 0; j < PER; ++j) {
            const int k = 2 * (threadIdx.x + 256 * j);
            tab_hi[k] = v[j].x;
            tab_lo[k] = v[j].y;
            tab_hi[k + 1] = v[j].z;
            tab_lo[k + 1] = v[j].w;
        }
    } else {
        for (int k = threadIdx.x; k < BUCKETS; k += blockDim.x) {
            tab_hi[k] = tab[2 * k];
            tab_lo[k] = tab[2 * k + 1];
        }
    }
}

// The two-pass filter (FILTER > 0; see the file comment) over the thread's
// tokens of [start, end): G groups of four tokens a step; with PREFETCH the
// next step's logits are loaded before this step's work. Loads the bucket
// table into tab_hi / tab_lo after the first loads are on their way (every
// thread of the block must call it). thr: the top-k threshold, NaN if none.
template <typename T, int G, bool PREFETCH>
__device__ __forceinline__ void two_pass(Cand& c, const T* __restrict__ lr, unsigned start, unsigned end, bool vec,
                                         float thr, unsigned long long pos, unsigned stream, float inv_t,
                                         const float* __restrict__ tab, float* tab_hi, float* tab_lo,
                                         const GumbelArgs& args) {
    const unsigned step = G * blockDim.x;
    float next[G][4];
    auto load = [&](unsigned q, float (&l)[G][4]) { load_groups<T, G>(lr, q, end, vec, l); };
    unsigned q = start / 4 + threadIdx.x;
    load(q, next);
    load_table(tab, tab_hi, tab_lo);
    // The block's best lower bound so far (ordered key), shared by the warps
    // without barriers: whatever value a warp reads is the lower bound of a
    // token that its owner kept, or better.
    __shared__ unsigned block_key;
    if (threadIdx.x == 0) block_key = ordered(-INFINITY);
    __syncthreads();
    float wlb = -INFINITY;
    // The warp loops while any lane has tokens (lanes past the end hold
    // NaN), so that the reduction below runs converged on the full warp.
    for (;; q += step) {
        const bool live = 4 * q < end;
        if (!__any_sync(0xffffffffu, live)) break;
        float l[G][4];
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int w = 0; w < 4; ++w) l[g][w] = next[g][w];
        }
        if (!live) {
#pragma unroll
            for (int g = 0; g < G; ++g) {
#pragma unroll
                for (int w = 0; w < 4; ++w) l[g][w] = __int_as_float(0x7fc00000);
            }
        }
        if constexpr (PREFETCH) {
            if (4 * (q + step) < end) load(q + step, next);
        }
        // Tokens that can never be candidates (NaN logits, padding, below
        // the top-k threshold) become NaN: no bound of theirs counts.
        if (!isnan(thr)) {
#pragma unroll
            for (int g = 0; g < G; ++g) {
#pragma unroll
                for (int w = 0; w < 4; ++w) l[g][w] = l[g][w] >= thr ? l[g][w] : __int_as_float(0x7fc00000);
            }
        }
        unsigned bits[G][4];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const unsigned qg = q + g * blockDim.x;
            const uint4 r = philox_k(make_uint4((unsigned)pos, (unsigned)(pos >> 32), qg, stream), args);
            bits[g][0] = r.x, bits[g][1] = r.y, bits[g][2] = r.z, bits[g][3] = r.w;
        }
        // Pass 1: the best lower bound of an exact score in the warp (each
        // is the score of a token that pass 2 keeps).
        float m = -INFINITY;
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int w = 0; w < 4; ++w) m = fmaxf(m, __fmaf_rn(l[g][w], inv_t, tab_lo[bucket(bits[g][w])]));
        }
        unsigned key = __reduce_max_sync(0xffffffffu, ordered(m));
        unsigned seen = 0;
        if ((threadIdx.x & 31) == 0) seen = atomicMax(&block_key, key);
        key = max(key, __shfl_sync(0xffffffffu, seen, 0));
        wlb = fmaxf(wlb, __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key));
        // The thread's own candidate's lower bound counts too (NaN: none).
        const float bar = fmaxf(wlb, c.lb);
        // Pass 2: only tokens whose upper bound reaches it can win.
        unsigned keep = 0;
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                // The bucket again, hidden from common-subexpression
                // elimination: kept from pass 1, the 16 indices spilled.
                unsigned x = bits[g][w];
                asm volatile("" : "+r"(x));
                if (__fmaf_rn(l[g][w], inv_t, tab_hi[bucket(x)]) >= bar) keep |= 1u << (4 * g + w);
            }
        }
        // The rare kept tokens: logits and bits again (from L1/L2 and
        // Philox), so that the registers of the step's tokens are free after
        // pass 2 (kept live, they spilled at the 64-register cap).
        if (keep != 0) {
#pragma unroll 1
            for (int g = 0; g < G; ++g) {
                if (((keep >> (4 * g)) & 15u) == 0) continue;
                const unsigned qg = q + g * blockDim.x;
                float lk[4];
                load4(lr, 4 * qg, end, vec, lk);
                const uint4 r = philox_k(make_uint4((unsigned)pos, (unsigned)(pos >> 32), qg, stream), args);
                const unsigned bk[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
                for (int w = 0; w < 4; ++w) {
                    if (keep & (1u << (4 * g + w))) consider<false>(c, lk[w], 4 * qg + w, bk[w], inv_t);
                }
            }
        }
        if constexpr (!PREFETCH) {
            if (4 * (q + step) < end) load(q + step, next);
        }
    }
}

#include "gumbel_prefilter.cuh"

// One block: tokens [start, start + chunk) of row blockIdx.y (relative to the
// launch's first row); the block's best (ordered score, ~token) goes into
// the row's word (keys[2·row], keys[2·row + 1]); the row's last block writes
// token and score.
// FILTER: 0 none beyond the approximate noise; 1, 2, 3 the two-pass filter
// on the bucket bounds (see the file comment) with 16 tokens a thread and
// step, 8 with the next step's logits loaded ahead, 16 likewise; 4 the
// filter on the Philox bits (gumbel_prefilter.cuh).
template <typename T, bool EXACT_ONLY, int FILTER = 0>
__device__ __forceinline__ void gumbel_main(const T* __restrict__ logits, const float* __restrict__ thresholds,
                                            unsigned long long* __restrict__ keys,
                                            unsigned long long* __restrict__ bars, unsigned epoch,
                                            unsigned* __restrict__ tokens, float* __restrict__ scores, unsigned vocab,
                                            unsigned chunk, unsigned stream, float inv_t, int vec,
                                            const float* __restrict__ tab, const GumbelArgs& args) {
    // Upper and lower bounds of the noise per bucket of bits >> 22 (apart,
    // so that pass 2's loads are not merged into pass 1's and kept live).
    // (FILTER 4: the table as stored, bounds interleaved, in tab_hi.)
    __shared__ __align__(16) float tab_hi[FILTER > 0 ? (FILTER == 4 ? 2 * BUCKETS : BUCKETS) : 1];
    __shared__ float tab_lo[FILTER > 0 && FILTER < 4 ? BUCKETS : 1];
    const unsigned row = blockIdx.y;
    const unsigned start = blockIdx.x * chunk;
    const unsigned end = min(start + chunk, vocab);
    const unsigned long long pos = args.pos[row];
    const float thr = thresholds != nullptr ? thresholds[row] : -INFINITY;
    const T* lr = logits + (unsigned long long)row * vocab;
    Cand c = {__int_as_float(0x7fc00000), __int_as_float(0x7fc00000), 0.0f, 0xffffffffu, 0u, false};
    // The block's best (ordered score, ~token) and how many of its warps
    // have offered theirs (see the end); the filters' first barrier orders
    // this before any use, the other paths have their own.
    __shared__ unsigned long long block_best;
    __shared__ unsigned block_done;
    if (threadIdx.x == 0) block_best = 0, block_done = 0;
    if constexpr (FILTER == 0 || EXACT_ONLY) __syncthreads();
    // Four groups of four tokens per step, loads first so that they overlap.
    constexpr int G = 4;
    const unsigned q0 = start / 4 + threadIdx.x;
    // A lower bound of some token's exact score in the row, known to the
    // block at the end (FILTER 4): candidates whose upper bound is below it
    // cannot win and get no exact score.
    float known = -INFINITY;
    if constexpr (FILTER == 4 && !EXACT_ONLY) {
        known = bits_filter<T>(c, lr, start, end, vec != 0, thresholds != nullptr ? thr : NAN, pos, stream, inv_t,
                               tab, tab_hi, RowBar{bars + BAR_STRIDE * row, epoch}, args);
    } else if constexpr (FILTER > 0 && !EXACT_ONLY) {
        constexpr int G2 = FILTER == 2 ? 2 : 4;
        two_pass<T, G2, FILTER != 1>(c, lr, start, end, vec != 0, thresholds != nullptr ? thr : NAN, pos, stream,
                                     inv_t, tab, tab_hi, tab_lo, args);
    } else
    for (unsigned q = q0; 4 * q < end; q += G * blockDim.x) {
        float l[G][4];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const unsigned qg = q + g * blockDim.x;
            if (4 * qg < end) {
                load4(lr, 4 * qg, end, vec != 0, l[g]);
            } else {
#pragma unroll
                for (int w = 0; w < 4; ++w) l[g][w] = __int_as_float(0x7fc00000);
            }
        }
        {
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const unsigned qg = q + g * blockDim.x;
            if (4 * qg >= end) break;
            const uint4 r = philox_k(make_uint4((unsigned)pos, (unsigned)(pos >> 32), qg, stream), args);
            const unsigned bits[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
            for (int w = 0; w < 4; ++w) {
                // NaN logits (and padding past the end) and tokens below the
                // top-k threshold are never candidates.
                if (!(l[g][w] >= thr)) continue;
                consider<EXACT_ONLY>(c, l[g][w], 4 * qg + w, bits[w], inv_t);
            }
        }
        }
    }
    // Lanes whose candidate may still be the warp's best get its exact score
    // (the warp's best lower bound by one reduction instruction).
    const float lb_lane = fmaxf(c.i == 0xffffffffu ? -INFINITY : c.lb, known);
    const float lbw = from_ordered(__reduce_max_sync(0xffffffffu, ordered(isnan(lb_lane) ? -INFINITY : lb_lane)));
    // Each such lane offers (ordered score, ~token) to the block by a
    // shared-memory atomic: the largest key is the winner by `better`'s
    // order (−0 and +0 tie, as there), and below the bar most warps have no
    // lane left to offer, so a shuffle tree over the warp first would only
    // add latency at the kernel's end.
    if (c.i != 0xffffffffu && !(c.ub < lbw)) {
        const float s = c.known ? c.lb : exact_score(c.l, inv_t, c.bits);
        if (!isnan(s)) atomicMax(&block_best, ((unsigned long long)ordered(s) << 32) | (0xffffffffu - c.i));
    }
    __syncwarp();
    // The block's last warp offers the block's to the row: no barrier (one
    // made early warps wait for the block's slowest) and one global
    // ordering point a block (a fence a warp stalled the warps 8 % of the
    // time).
    if ((threadIdx.x & 31) == 0) {
        __threadfence_block();
        const bool last_warp = atomicAdd(&block_done, 1u) == (blockDim.x >> 5) - 1;
        // The row's result from its best key, and the scratch reset.
        auto finish = [&](unsigned long long key) {
            if (key == 0) {
                tokens[row] = 0xffffffffu;
                scores[row] = __int_as_float(0x7fc00000);
                return;
            }
            // The key holds the winner's exact score; only its sign is
            // lost when it is zero (`ordered` takes −0 as +0), so a zero is
            // computed again. (Always computing it again, a logit load and
            // the exact noise at the very end, cost 0.2–0.4 µs a call on
            // the H100.)
            const unsigned token = 0xffffffffu - (unsigned)(key & 0xffffffffu);
            float score = from_ordered((unsigned)(key >> 32));
            if (score == 0.0f) {
                const uint4 r = philox_k(make_uint4((unsigned)pos, (unsigned)(pos >> 32), token / 4, stream), args);
                const unsigned bits[4] = {r.x, r.y, r.z, r.w};
                score = exact_score(to_f32(lr[token]), inv_t, bits[token % 4]);
            }
            tokens[row] = token;
            scores[row] = score;
        };
        // The block's key goes to the row's word, {best key, blocks that
        // offered}, by one 128-bit compare-and-swap: the block that makes
        // the count whole has the row's best key in hand and finishes,
        // with no fence and no second atomic (a ticket taken
        // acquire-release after an atomicMax of the key, then an
        // atomicExch of it in the last block, cost 0.2 µs more a call on
        // the H100). The first try expects the reset word.
        if (last_warp) {
            __threadfence_block();
            const unsigned long long key = atomicOr(&block_best, 0ull);
            unsigned long long* w = keys + 2 * row;
            // A word of another launch (one cut short) counts as empty.
            unsigned long long e0 = 0, e1 = 0, n0, n1;
            for (;;) {
                const bool ours = (unsigned)(e1 >> 32) == epoch;
                n0 = max(ours ? e0 : 0ull, key);
                n1 = ((unsigned long long)epoch << 32) | ((ours ? (unsigned)e1 : 0u) + 1);
                unsigned long long o0, o1;
                asm volatile(
                    "{\n.reg .b128 d, c, v;\n"
                    "mov.b128 c, {%2, %3};\n"
                    "mov.b128 v, {%4, %5};\n"
                    "atom.relaxed.gpu.global.cas.b128 d, [%6], c, v;\n"
                    "mov.b128 {%0, %1}, d;\n}\n"
                    : "=l"(o0), "=l"(o1)
                    : "l"(e0), "l"(e1), "l"(n0), "l"(n1), "l"(w)
                    : "memory");
                if (o0 == e0 && o1 == e1) break;
                e0 = o0, e1 = o1;
            }
            if ((unsigned)n1 == gridDim.x) {
                // Reset for the next call.
                asm volatile("st.relaxed.gpu.global.v2.u64 [%0], {%1, %1};\n" ::"l"(w), "l"(0ull) : "memory");
                finish(n0);
            }
        }
    }
}

#include "topk_threshold.cuh"

}  // namespace

#define GUMBEL_K(T, NAME, PRE, EXACT, FILTER, BOUNDS)                                                      \
    extern "C" __global__ void BOUNDS PRE##NAME(const T* logits, const float* thresholds,                     \
                                                unsigned long long* keys,                                      \
                                                unsigned long long* bars, unsigned epoch, unsigned* tokens,    \
                                                float* scores, unsigned vocab, unsigned chunk,                 \
                                                unsigned stream, float inv_t, int vec, const float* tab,       \
                                                const GumbelArgs args) {                                       \
        gumbel_main<T, EXACT, FILTER>(logits, thresholds, keys, bars, epoch, tokens, scores, vocab,   \
                                      chunk, stream, inv_t, vec, tab, args);                           \
    }
// The bits filter runs about two blocks a multiprocessor (`bits_chunk` in
// gumbel_sample.rs), so its bounds allow 128 registers: at 64 it spilled and
// could not hold the row bar's read across a step.
#define GUMBEL(T, NAME)                                                                                       \
    GUMBEL_K(T, NAME, gumbel_, false, 0, __launch_bounds__(256, 4))                                          \
    GUMBEL_K(T, NAME, gumbel_tab2_, false, 1, __launch_bounds__(256, 4))                                     \
    GUMBEL_K(T, NAME, gumbel_tab2p2_, false, 2, __launch_bounds__(256, 4))                                   \
    GUMBEL_K(T, NAME, gumbel_tab2p4_, false, 3, __launch_bounds__(256, 4))                                   \
    GUMBEL_K(T, NAME, gumbel_bits_, false, 4, __launch_bounds__(256, 2))                                     \
    GUMBEL_K(T, NAME, gumbel_exact_, true, 0, __launch_bounds__(256))                                        \
    extern "C" __global__ void __launch_bounds__(1024)                                                        \
        topk_threshold_##NAME(const T* logits, float* thresholds, unsigned vocab, unsigned k) {               \
        topk_threshold<T>(logits, thresholds, vocab, k);                                                      \
    }

GUMBEL(float, f32)
GUMBEL(__nv_bfloat16, bf16)
GUMBEL(__half, f16)

// Exhaustive check of the filter's premise over x in [x0, x0 + count):
// the largest |G_approx − G_exact| where the approximation is trusted goes
// into out[0] (as bits, by atomicMax on non-negative floats), the number of
// untrusted inputs into out[1].
extern "C" __global__ void gumbel_margin_check(unsigned long long x0, unsigned long long count, unsigned* out) {
    float worst = 0.0f;
    unsigned untrusted = 0;
    for (unsigned long long k = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; k < count;
         k += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned x = (unsigned)(x0 + k);
        const float a = gumbel_approx(x);
        if (!(fabsf(a) < INFINITY)) {
            ++untrusted;
        } else {
            worst = fmaxf(worst, fabsf(a - gumbel_exact(x)));
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        worst = fmaxf(worst, __shfl_down_sync(0xffffffffu, worst, off));
        untrusted += __shfl_down_sync(0xffffffffu, untrusted, off);
    }
    if ((threadIdx.x & 31) == 0) {
        atomicMax(out, __float_as_uint(worst));
        atomicAdd(out + 1, untrusted);
    }
}

// Exhaustive check of the bucket table over x in [x0, x0 + count): the
// number of inputs whose exact G lies outside its bucket's bounds
// (tab[2b + 1] ≤ G ≤ tab[2b], b = bucket(x); must be none) into out[0], and
// the smallest distance to a bound over all of them into out[1] (as bits
// of a non-negative float, by atomicMin; 0 if violated).
extern "C" __global__ void gumbel_table_check(const float* tab, unsigned long long x0, unsigned long long count,
                                              unsigned* out) {
    unsigned bad = 0;
    float slack = INFINITY;
    for (unsigned long long k = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; k < count;
         k += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned x = (unsigned)(x0 + k);
        const float g = gumbel_exact(x), hi = tab[2 * bucket(x)], lo = tab[2 * bucket(x) + 1];
        if (!(lo <= g && g <= hi)) {
            ++bad;
            slack = 0.0f;
        } else {
            slack = fminf(slack, fminf(hi - g, g - lo));
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        slack = fminf(slack, __shfl_down_sync(0xffffffffu, slack, off));
        bad += __shfl_down_sync(0xffffffffu, bad, off);
    }
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(out, bad);
        atomicMin(out + 1, __float_as_uint(slack));
    }
}

// G for given bits, exactly (for the parity test of the noise itself).
extern "C" __global__ void gumbel_noise(const unsigned* x, float* g, unsigned n) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = gumbel_exact(x[i]);
}
