// Runs gumbel_sample.metal's kernels on the host (tests/msl_check.rs appends
// this file to common.metal + gumbel_sample.metal, attributes stripped): one
// thread a threadgroup, so each chunk's tokens go through one thread's
// filter and exact scores in order, and the simdgroup and threadgroup steps
// reduce a single value. Input on stdin (hex where bits):
//   batch vocab chunk seed_lo seed_hi stream inv_t_bits top_k(0: none)
//   batch positions, batch·vocab logits (f32 bits), 2·2048 table floats
// Output: a line "token score_bits" per row.
#include <cstdio>
#include <vector>

int main() {
    uint batch, vocab, chunk, seed_lo, seed_hi, stream, inv_bits, top_k;
    if (std::scanf("%u %u %u %x %x %x %x %u", &batch, &vocab, &chunk, &seed_lo, &seed_hi, &stream, &inv_bits,
                   &top_k) != 8)
        return 2;
    std::vector<ulong> pos(batch);
    for (auto& v : pos)
        if (std::scanf("%lx", &v) != 1) return 2;
    std::vector<float> x(size_t(batch) * vocab), tab(2 * 2048);
    for (auto* a : {&x, &tab})
        for (auto& v : *a) {
            uint b;
            if (std::scanf("%x", &b) != 1) return 2;
            v = as_type<float>(b);
        }
    const uint chunks = (vocab + chunk - 1) / chunk;
    GumbelParams p = {vocab, chunk, chunks, seed_lo, seed_hi, stream, top_k != 0, as_type<float>(inv_bits)};
    std::vector<float> thr(batch, -INFINITY), ps(size_t(batch) * chunks);
    std::vector<uint> pt(size_t(batch) * chunks), tokens(batch);
    std::vector<float> scores(batch);
    for (uint row = 0; row < batch; ++row) {
        if (top_k != 0) {
            uint v = vocab, k = top_k;
            topk_threshold<float>(x.data(), thr.data(), v, k, row, 0, 1);
        }
        for (uint c = 0; c < chunks; ++c)
            gumbel_partial<float>(x.data(), pos.data(), thr.data(), ps.data(), pt.data(), p, uint2(c, row), 0, 1, 0,
                                  0, tab.data());
    }
    uint rows = batch;
    for (uint row = 0; row < batch; ++row) gumbel_finish(ps.data(), pt.data(), tokens.data(), scores.data(), p, rows, row);
    for (uint row = 0; row < batch; ++row) std::printf("%u %08x\n", tokens[row], as_type<uint>(scores[row]));
    return 0;
}
