// Runs dispatches of the Metal kernels on the host, threadgroup by
// threadgroup (group_emulator.h), for tests/msl_group_check.rs. The test
// appends this file to common.metal, the modules (threadgroup variables made
// static, #line kept) and the launchers it generates from the kernels'
// signatures (`wb_launch_<kernel>`: [[buffer(i)]] from slot i, the thread
// attributes from wb_emu::Thread), then strips the attributes.
//
// Commands on stdin, one a line, as the Rust side encodes them:
//   B id bytes 1        a buffer, its bytes follow the newline raw
//   B id bytes 0        a buffer of poison (every byte 0xff: NaN as f32)
//   S order             0: threads ready in index order; 1: reversed
//   D name gx gy tx ty  a dispatch of gx × gy threadgroups of tx × ty
//                       threads, then its bindings, one a line:
//     r slot id offset  set_buffer of a buffer the kernel must not write
//                       (unless also bound with w)
//     w slot id offset  set_buffer of a buffer it may write
//     c slot hex        set_bytes
//     t slot bytes      set_threadgroup_memory_length
//     e                 end: run it
//   O id                the buffer's bytes to stdout
// Every buffer, and the threadgroup memory, is followed by a canary that
// each dispatch must leave intact, and a buffer bound only with r must come
// out of the dispatch unchanged (candle's Metal encoder orders passes by
// those roles: a write through an input binding would escape it).

#include <algorithm>
#include <string>
#include <utility>

namespace {

struct Kernel {
    const char* name;
    void (*launch)(const wb_emu::Thread&);
    bool cooperative;  // uses threadgroup_barrier or simd functions
};

#define WB_FLOATS(K, F, C)                                                                                 \
    {K "_f32", F<float>, C}, {K "_bf16", F<metal::bfloat>, C}, { K "_f16", F<metal::half>, C }

const Kernel KERNELS[] = {
    {"fwht_block_f32_f32", wb_launch_fwht_block<float, float>, true},
    {"fwht_block_bf16_bf16", wb_launch_fwht_block<metal::bfloat, metal::bfloat>, true},
    {"fwht_block_f16_f16", wb_launch_fwht_block<metal::half, metal::half>, true},
    {"fwht_block_bf16_f32", wb_launch_fwht_block<metal::bfloat, float>, true},
    {"fwht_block_f16_f32", wb_launch_fwht_block<metal::half, float>, true},
    WB_FLOATS("fwht_cross", wb_launch_fwht_cross, false),
    WB_FLOATS("mix", wb_launch_mix, false),
    {"quantize_f32_8", wb_launch_quantize_f32_8, true},
    {"quantize_f32_4", wb_launch_quantize_f32_4, true},
    WB_FLOATS("fake_f32", wb_launch_fake_f32, true),
    {"dequantize_8", wb_launch_dequantize_8, false},
    {"dequantize_4", wb_launch_dequantize_4, false},
    WB_FLOATS("channel_stats", wb_launch_channel_stats, false),
    {"gemm_w8a8", wb_launch_gemm_w8a8, true},
    WB_FLOATS("gumbel_partial", wb_launch_gumbel_partial, true),
    WB_FLOATS("topk_threshold", wb_launch_topk_threshold, true),
    {"gumbel_finish", wb_launch_gumbel_finish, false},
    {"selftest_simd", wb_launch_selftest_simd, true},
    {"selftest_barrier_divergence", wb_launch_selftest_barrier_divergence, true},
    {"selftest_simd_divergence", wb_launch_selftest_simd_divergence, true},
    {"selftest_neighbour", wb_launch_selftest_neighbour, true},
};

constexpr size_t CANARY = 64;

struct Buffer {
    std::vector<unsigned char> bytes;  // the contents, then CANARY bytes of 0xa5
    size_t size() const { return bytes.size() - CANARY; }
};

std::vector<Buffer> buffers;

Buffer& buffer(uint id) {
    if (id >= buffers.size() || buffers[id].bytes.empty()) wb_emu::fail("no buffer %u", id);
    return buffers[id];
}

void check_canaries(const char* name) {
    for (size_t id = 0; id < buffers.size(); ++id)
        for (size_t i = 0; i < buffers[id].bytes.size() && i < CANARY; ++i)
            if (buffers[id].bytes[buffers[id].size() + i] != 0xa5)
                wb_emu::fail("%s wrote past the end of buffer %zu", name, id);
}

void dispatch(const char* name, uint gx, uint gy, uint tx, uint ty) {
    const Kernel* k = nullptr;
    for (const Kernel& c : KERNELS)
        if (std::strcmp(c.name, name) == 0) k = &c;
    if (k == nullptr) wb_emu::fail("no kernel %s", name);
    std::vector<std::vector<unsigned char>> constants(32);
    std::vector<void*> slots(32, nullptr);
    size_t tg_bytes = 0;
    bool tg_set = false;
    std::vector<uint> read_only, written;
    char c;
    while (std::scanf(" %c", &c) == 1 && c != 'e') {
        uint slot;
        if (std::scanf("%u", &slot) != 1 || slot >= 32) wb_emu::fail("bad binding of %s", name);
        if (c == 'r' || c == 'w') {
            uint id;
            size_t offset;
            if (std::scanf("%u %zu", &id, &offset) != 2) wb_emu::fail("bad buffer binding");
            Buffer& b = buffer(id);
            if (offset > b.size()) wb_emu::fail("%s: offset %zu past buffer %u", name, offset, id);
            slots[slot] = b.bytes.data() + offset;
            (c == 'r' ? read_only : written).push_back(id);
        } else if (c == 'c') {
            char hex[1024];
            if (std::scanf("%1023s", hex) != 1) wb_emu::fail("bad set_bytes");
            auto& v = constants[slot];
            for (size_t i = 0; hex[2 * i] != 0 && hex[2 * i + 1] != 0; ++i) {
                uint byte;
                std::sscanf(hex + 2 * i, "%2x", &byte);
                v.push_back((unsigned char)byte);
            }
            v.resize(v.size() + 16);  // aligned reads of the last field stay inside
            slots[slot] = v.data();
        } else if (c == 't') {
            if (std::scanf("%zu", &tg_bytes) != 1 || slot != 0) wb_emu::fail("bad threadgroup memory length");
            if (tg_bytes % 16 != 0)
                wb_emu::fail("%s: threadgroup memory length %zu is not a multiple of 16 bytes, as "
                             "setThreadgroupMemoryLength requires",
                             name, tg_bytes);
            tg_set = true;
        } else {
            wb_emu::fail("unknown binding %c", c);
        }
    }
    if (tx * ty == 0 || tx * ty > wb_emu::MAX_THREADS)
        wb_emu::fail("%s: %u x %u threads a threadgroup (at most %u)", name, tx, ty, wb_emu::MAX_THREADS);
    if (tg_bytes > wb_emu::MAX_THREADGROUP_MEMORY) wb_emu::fail("%s: %zu bytes of threadgroup memory", name, tg_bytes);
    std::vector<std::pair<uint, std::vector<unsigned char>>> before;
    for (uint id : read_only)
        if (std::find(written.begin(), written.end(), id) == written.end()) before.emplace_back(id, buffer(id).bytes);
    std::vector<unsigned char> tg(tg_bytes + CANARY);
    wb_emu::kernel_name = k->name;
    wb_emu::sched.launch = k->launch;
    wb_emu::sched.cooperative = k->cooperative;
    wb_emu::sched.dynamic_bytes = tg_bytes;
    std::vector<wb_emu::Thread> threads(tx * ty);
    for (uint y = 0; y < gy; ++y)
        for (uint x = 0; x < gx; ++x) {
            std::memset(tg.data(), 0xff, tg_bytes);
            std::memset(tg.data() + tg_bytes, 0xa5, CANARY);
            for (uint i = 0; i < tx * ty; ++i)
                threads[i] = wb_emu::Thread{uint2(x, y), uint2(i % tx, i / tx), uint2(tx, ty), i, slots.data(),
                                            slots.size(), tg_set ? tg.data() : nullptr};
            wb_emu::run_group(threads);
            for (size_t i = tg_bytes; i < tg.size(); ++i)
                if (tg[i] != 0xa5) wb_emu::fail("%s wrote past its %zu bytes of threadgroup memory", name, tg_bytes);
        }
    check_canaries(name);
    for (const auto& [id, bytes] : before)
        if (buffer(id).bytes != bytes) wb_emu::fail("%s wrote buffer %u, bound for reading only", name, id);
}

}  // namespace

int main() {
    char op;
    while (std::scanf(" %c", &op) == 1) {
        if (op == 'B') {
            uint id, filled;
            size_t bytes;
            if (std::scanf("%u %zu %u", &id, &bytes, &filled) != 3) return 2;
            if (id >= buffers.size()) buffers.resize(id + 1);
            Buffer& b = buffers[id];
            b.bytes.assign(bytes + CANARY, 0xa5);
            std::memset(b.bytes.data(), 0xff, bytes);
            if (filled == 1 && (std::getchar() != '\n' || std::fread(b.bytes.data(), 1, bytes, stdin) != bytes))
                wb_emu::fail("short buffer %u", id);
        } else if (op == 'S') {
            uint order;
            if (std::scanf("%u", &order) != 1) return 2;
            wb_emu::sched.reverse = order == 1;
        } else if (op == 'D') {
            char name[128];
            uint gx, gy, tx, ty;
            if (std::scanf("%127s %u %u %u %u", name, &gx, &gy, &tx, &ty) != 5) return 2;
            dispatch(name, gx, gy, tx, ty);
        } else if (op == 'O') {
            uint id;
            if (std::scanf("%u", &id) != 1) return 2;
            const Buffer& b = buffer(id);
            std::fwrite(b.bytes.data(), 1, b.size(), stdout);
        } else {
            return 2;
        }
    }
    return 0;
}
