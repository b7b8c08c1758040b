// The sampler's fourth filter (FILTER 4): a threshold on the Philox bits
// themselves. Included by gumbel_sample.cu inside its anonymous namespace,
// after the helpers it uses (philox_k, bucket, consider, ordered, load4).
//
// Why: the two-pass filter spends ~25 instructions a token on two bucket
// indices, two table loads and two comparisons besides Philox's ~10.
// Almost no token can win, and which ones can is decided by the bits alone
// once a thread knows its largest logit: with B a lower bound of some
// token's exact score (the block's best published bound) and Lm the largest
// logit of the thread's 16 tokens this step, a token whose noise is below
// g = B − Lm/T − δ scores below B (δ covers the roundings of g and of the
// score's fma, which is monotone in both operands), so it cannot win. Noise
// rises with the bits x, and the bucket table's upper bounds rise with the
// bucket (checked on the CPU) and hold for every x (checked exhaustively on
// the GPU), so if the upper bound of the bucket of the thread's largest
// bits xm is below g, every token of the thread this step is dropped. The
// common step is then Philox, a running max of the bits and of the logits,
// and one table look-up a thread. A thread that fails it tests each group
// of four the same way (the group's largest bits against the threshold of
// the group's largest logit), and only the groups that fail that too look
// at their tokens again (logits and bits still in registers): the two-pass
// filter's per-token test on the upper bound, then the exact machinery.
// Every dropped token provably scores below some token's exact score, so
// tokens and scores are the same bits (the parity tests check every
// filter).
//
// B must be good from the start: at the first step of a warp (or any step
// where some lane's g is low) each lane's token with the largest logit
// gets the lower bound of its score from its bucket, and the warp's best is
// published to the block and, through RowBar, to the row's other blocks.
//
// H100, [64, 131072] f32 at T = 0.8 (the benchmark): 14.3–14.9 µs a kernel
// against the two-pass filter's 23.1–23.6 in the seventh round's runs
// (bf16: 15.6–15.9 against 23.9–25.0). What the instructions are, and what
// was tried, is in kernels/gpu/README.md.

// g = B − p − δ for p = Lm/T rounded: δ = 2^−10 + (|B| + |p|)·2^−19 is
// hundreds of times the roundings of g's three steps and of the score's fma
// (each at most half an ulp of numbers no larger than |B| + |p| + δ), so
// p + G < p + g ≤ B − ulp(B) and the token's score rounds below B. NaN
// whenever nothing may be dropped (B = −inf, p = +inf).
__device__ __forceinline__ float drop_threshold(float bar, float p) {
    if (p == -INFINITY) return bar > -INFINITY ? INFINITY : NAN;  // no live token in the thread's step
    const float d = __fadd_rn(bar, -p);
    const float delta = __fmaf_rn(__fadd_rn(fabsf(bar), fabsf(p)), 1.9073486328125e-06f, 0.0009765625f);
    return __fadd_rn(d, -delta);
}

__device__ __forceinline__ float from_ordered(unsigned k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// A step is "weak" when some lane's threshold g is low: at a warp's first
// step (bar −inf), or when a lane's logits lie far above the bar (g ≤ 2.5
// lets through about 1/12 of the tokens by their bits); the bar is raised
// first by the lower bound of each lane's token with the largest logit.
constexpr float WEAK_G = 2.5f;

// The best lower bound of an exact score published by any block of the
// row in this launch: a 64-bit word per row, (epoch << 32) | ordered key,
// raised by atomicMax. The epoch (one per launch, never 0; the scratch
// starts at 0) makes words of earlier launches read as "nothing", so no
// block has to reset the word and no late atomic of one launch can leak
// into the next. Any value read bounds some token's exact score in the
// row, so it may serve as the bar exactly as the block's own does.
// Rows' words 128 bytes apart, each in a cache line of its own (the blocks
// of every row read theirs each step and raise it by atomics; against 8
// bytes apart no difference was measured on the H100).
constexpr unsigned BAR_STRIDE = 16;
struct RowBar {
    unsigned long long* word;
    unsigned epoch;
    __device__ __forceinline__ unsigned long long read() const {
        unsigned long long v;
        asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];\n" : "=l"(v) : "l"(word) : "memory");
        return v;
    }
    __device__ __forceinline__ float value(unsigned long long v) const {
        return (unsigned)(v >> 32) == epoch ? from_ordered((unsigned)v) : -INFINITY;
    }
    __device__ __forceinline__ void raise(unsigned key) const {
        const unsigned long long v = ((unsigned long long)epoch << 32) | key;
        asm volatile("red.relaxed.gpu.global.max.u64 [%0], %1;\n" ::"l"(word), "l"(v) : "memory");
    }
};

// The block size of the bits filter, which its launch uses (`gumbel_bits_*`
// in gumbel_sample.rs): as a constant, a step's four loads are one address
// and immediate offsets instead of 32 instructions of 64-bit arithmetic.
constexpr unsigned BITS_BLOCK = 256;

// The bits filter over the thread's tokens of [start, end), 16 a step, the
// next step's logits loaded ahead. thr: the top-k threshold, NaN if none.
// stab: shared memory for the bucket table (upper and lower bound of bucket
// b at 2b and 2b + 1), copied by one bulk copy while the first step's Philox
// runs; every warp of the block runs the same number of steps (lanes past
// the end hold NaN logits), so the one barrier, in the first step, is met
// by all.
//
// The row's blocks share their bar too, through `row_bar` (see RowBar):
// read every step, raised whenever the block's is. Returns the best bar the
// block knows at the end, which lets the end skip candidates below it.
template <typename T>
__device__ __forceinline__ float bits_filter(Cand& c, const T* __restrict__ lr, unsigned start, unsigned end, bool vec,
                                            float thr, unsigned long long pos, unsigned stream, float inv_t,
                                            const float* __restrict__ tab, float* stab, const RowBar& row_bar,
                                            const GumbelArgs& args) {
    constexpr int G = 4;
    const unsigned step = G * BITS_BLOCK;
    // The next step's logits, loaded a step ahead.
    float next[G][4];
    auto load = [&](unsigned q, float (&l)[G][4]) {
        if (vec && 4 * (q + (G - 1) * BITS_BLOCK) + 4 <= end) {
            // One 64-bit address a step, the groups at immediate offsets.
            const T* p = lr + 4 * (unsigned long long)q;
#pragma unroll
            for (int g = 0; g < G; ++g) load4v(p, 4 * g * BITS_BLOCK, l[g]);
            return;
        }
        load_groups<T, G>(lr, q, end, vec, l);
    };
    if (blockDim.x != BITS_BLOCK) __trap();  // a launch of another size would skip tokens
    unsigned q = start / 4 + threadIdx.x;
    load(q, next);
    // The table by one bulk copy (the tensor memory accelerator), issued by
    // one thread and waited for at the first step's barrier: 16 KiB that
    // took every thread four cp.async and their address arithmetic.
    __shared__ __align__(8) unsigned long long table_bar;
    const unsigned table_bar_s = (unsigned)__cvta_generic_to_shared(&table_bar);
    if (threadIdx.x == 0) {
        constexpr unsigned BYTES = 2 * BUCKETS * sizeof(float);
        asm volatile(
            "mbarrier.init.shared::cta.b64 [%0], 1;\n"
            "fence.mbarrier_init.release.cluster;\n"
            "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%2], [%3], %1, [%0];\n" ::"r"(
                table_bar_s),
            "r"(BYTES), "r"((unsigned)__cvta_generic_to_shared(stab)), "l"(tab)
            : "memory");
    }
    // The block's best lower bound (ordered key), raised by atomicMax and
    // read without barriers (after the first step's): any value read bounds
    // some token's exact score.
    __shared__ unsigned block_key;
    if (threadIdx.x == 0) block_key = ordered(-INFINITY);
    volatile unsigned* shared_key = &block_key;
    // A new lower bound goes to the block and to the row's other blocks.
    auto publish = [&](unsigned key) {
        const unsigned seen = atomicMax(&block_key, key);
        row_bar.raise(key);
        return seen;
    };
    const unsigned steps = (end - start + 4 * step - 1) / (4 * step);
    unsigned long long row_word = 0, row_next = row_bar.read();
    // One copy of the step's code (the loop not unrolled): unrolled by two,
    // with two buffers swapped instead of copied, it was no faster and
    // twice the code.
#pragma unroll 1
    for (unsigned it = 0; it < steps; ++it, q += step) {
        // The step's logits, kept while the next step's load into `next`
        // is on its way, for the rare thread that looks at its tokens again.
        float cur[G][4];
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int w = 0; w < 4; ++w) cur[g][w] = next[g][w];
        }
        // The step's Philox bits and each group's largest, first: Philox
        // does not need the logits, so at the first step it runs while the
        // block's first loads are on their way. The bits stay in registers
        // (two blocks a multiprocessor leave room) for the rare thread that
        // looks at its tokens again.
        unsigned bits[G][4], xg[G];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            const uint4 r = philox_k(make_uint4((unsigned)pos, (unsigned)(pos >> 32), q + g * BITS_BLOCK, stream), args);
            bits[g][0] = r.x, bits[g][1] = r.y, bits[g][2] = r.z, bits[g][3] = r.w;
            xg[g] = max(max(r.x, r.y), max(r.z, r.w));
        }
        // The step's tokens as candidates: NaN past the end, and with top-k
        // below the threshold (NaN tokens never win and count nowhere).
        auto live = [&](float v) { return isnan(thr) || v >= thr ? v : __int_as_float(0x7fc00000); };
        float lg[G];
        if (isnan(thr)) {
#pragma unroll
            for (int g = 0; g < G; ++g) lg[g] = fmaxf(fmaxf(cur[g][0], cur[g][1]), fmaxf(cur[g][2], cur[g][3]));
        } else {
#pragma unroll
            for (int g = 0; g < G; ++g) {
                lg[g] = fmaxf(fmaxf(live(cur[g][0]), live(cur[g][1])), fmaxf(live(cur[g][2]), live(cur[g][3])));
            }
        }
        const float lm = fmaxf(fmaxf(fmaxf(lg[0], lg[1]), fmaxf(lg[2], lg[3])), -INFINITY);
        if (it + 1 < steps) load(q + step, next);
        const unsigned xm = max(max(xg[0], xg[1]), max(xg[2], xg[3]));
        // Used only after Philox (the first step's read may still be on
        // its way): left alone, the compiler waited for it in the middle of
        // Philox. The dependence on xm forces the order, and dropping the
        // word when xm == 0 only loses information.
        row_word = xm == 0u ? 0ull : row_next;
        // The row's bar above was read a step ago (the first step: just
        // before the loop); the read for the next step goes out now, after
        // that use (a copy of the register before it made the copy wait):
        // under the kernel's load an L2 round trip outlasts a step's
        // Philox, and waiting for a read issued at the step's top was a
        // quarter of the stall samples.
        if (it + 1 < steps) row_next = row_bar.read();
        float bar = fmaxf(it == 0 ? c.lb : fmaxf(from_ordered(*shared_key), c.lb), row_bar.value(row_word));
        float gmin = drop_threshold(bar, __fmul_rn(lm, inv_t));
        const bool weak = __any_sync(0xffffffffu, !(gmin > WEAK_G));
        if (it == 0) {
            // The barrier first (the mbarrier's initialisation and
            // block_key's are then visible), then the table's arrival.
            __syncthreads();
            asm volatile(
                "{\n.reg .pred done;\n"
                "wait:\n"
                "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n"
                "@!done bra wait;\n}\n" ::"r"(table_bar_s)
                : "memory");
        }
        if (weak) {
            // The largest bits among the tokens with the largest logit:
            // fma(lm, 1/T, lower bound of their bucket) bounds that token's
            // exact score from below; the warp's best raises the bar.
            float m = -INFINITY;
            if (lm > -INFINITY) {
                unsigned xs = 0;
#pragma unroll
                for (int g = 0; g < G; ++g) {
#pragma unroll
                    for (int w = 0; w < 4; ++w) xs = cur[g][w] == lm ? max(xs, bits[g][w]) : xs;
                }
                m = __fmaf_rn(lm, inv_t, stab[2 * bucket(xs) + 1]);
            }
            unsigned key = __reduce_max_sync(0xffffffffu, ordered(m));
            unsigned seen = 0;
            if ((threadIdx.x & 31) == 0) seen = publish(key);
            key = max(key, __shfl_sync(0xffffffffu, seen, 0));
            bar = fmaxf(bar, from_ordered(key));
            gmin = drop_threshold(bar, __fmul_rn(lm, inv_t));
        }
        // Whether bits x may carry noise of at least g by the table: false
        // only when every x' ≤ x has noise below g (the bounds rise with the
        // bucket). NaN g drops nothing.
        auto may_reach = [&](unsigned x, float g) { return !(stab[2 * bucket(x)] < g); };
        // The rare thread whose largest bits may reach gmin: its groups
        // whose largest bits may reach their own threshold (from the
        // group's largest logit), then each token of those whose bucket's
        // upper bound reaches the bar, offered to the candidate exactly.
        if (may_reach(xm, gmin)) {
            // Which tokens reach the bar (only in groups whose largest bits
            // may reach their own threshold), then those few one at a time
            // through one copy of `consider`: sixteen inlined copies made
            // the kernel 87 KB, and a third of the slow path's stall samples
            // were instruction-cache misses (H100, Nsight Compute).
            unsigned keep = 0;
#pragma unroll
            for (int g = 0; g < G; ++g) {
                if (!may_reach(xg[g], drop_threshold(bar, __fmul_rn(lg[g], inv_t)))) continue;
#pragma unroll
                for (int w = 0; w < 4; ++w) {
                    const float ub = __fmaf_rn(live(cur[g][w]), inv_t, stab[2 * bucket(bits[g][w])]);
                    keep |= (unsigned)(ub >= bar) << (4 * g + w);
                }
            }
            const float lb_before = c.lb;
            while (keep != 0) {
                const unsigned k = __ffs(keep) - 1;
                keep &= keep - 1;
                // Token k's logit and bits by selects (a dynamic index would
                // put the arrays in local memory).
                float l = cur[0][0];
                unsigned x = bits[0][0];
#pragma unroll
                for (int j = 1; j < 4 * G; ++j) {
                    l = k == (unsigned)j ? cur[j / 4][j % 4] : l;
                    x = k == (unsigned)j ? bits[j / 4][j % 4] : x;
                }
                consider<false>(c, l, 4 * (q + (k / 4) * BITS_BLOCK) + k % 4, x, inv_t);
            }
            if (c.i != 0xffffffffu && !(c.lb <= lb_before)) publish(ordered(c.lb));
        }
    }
    return fmaxf(from_ordered(*shared_key), row_bar.value(row_word));
}
