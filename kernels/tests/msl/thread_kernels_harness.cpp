// Runs the Metal kernels in which every thread works alone (no simdgroup or
// threadgroup steps) on the host, one call per grid position, for
// tests/msl_check.rs, which appends this file to common.metal,
// channel_stats.metal and rotate_quantize.metal (attributes stripped).
// Input on stdin, one job (hex where bits):
//   S rows channels block_rows, then rows·channels f32 bits
//       -> channel_stats<float>: blocks·channels·6 f32 bits
//   D bits total group, then the code bytes and total/group scales (bits)
//       -> dequantize_8 or dequantize_4: total f32 bits
#include <cstdio>
#include <vector>

static bool read_floats(std::vector<float>& v) {
    for (auto& x : v) {
        uint b;
        if (std::scanf("%x", &b) != 1) return false;
        x = as_type<float>(b);
    }
    return true;
}

int main() {
    char job;
    if (std::scanf(" %c", &job) != 1) return 2;
    if (job == 'S') {
        unsigned long long rows;
        uint channels, block_rows;
        if (std::scanf("%llu %u %u", &rows, &channels, &block_rows) != 3) return 2;
        std::vector<float> x(rows * channels);
        if (!read_floats(x)) return 2;
        const uint blocks = uint((rows + block_rows - 1) / block_rows);
        std::vector<float> out(size_t(blocks) * channels * 6);
        StatsParams p = {rows, channels, block_rows};
        for (uint blk = 0; blk < blocks; ++blk)
            for (uint c = 0; c < channels; ++c) channel_stats<float>(x.data(), out.data(), p, uint2(c, blk));
        for (float v : out) std::printf("%08x\n", as_type<uint>(v));
        return 0;
    }
    if (job == 'D') {
        uint bits;
        unsigned long long total;
        uint group;
        if (std::scanf("%u %llu %u", &bits, &total, &group) != 3) return 2;
        std::vector<uchar> codes(bits == 8 ? total : (total + 1) / 2);
        for (auto& c : codes) {
            uint b;
            if (std::scanf("%x", &b) != 1) return 2;
            c = uchar(b);
        }
        std::vector<float> scales(total / group), out(total);
        if (!read_floats(scales)) return 2;
        DequantParams p = {total, group};
        for (uint i = 0; i < total; ++i) {
            if (bits == 8)
                dequantize_8(codes.data(), scales.data(), out.data(), p, i);
            else
                dequantize_4(codes.data(), scales.data(), out.data(), p, i);
        }
        for (float v : out) std::printf("%08x\n", as_type<uint>(v));
        return 0;
    }
    return 2;
}
