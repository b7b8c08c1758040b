// Per-channel partial statistics (src/stats/mod.rs), as channel_stats.cu: one
// thread per channel and block of rows, Pébay's update in the CPU's order.

struct StatsParams {
    ulong rows;
    uint channels;
    uint block_rows;
};

template <typename T>
kernel void channel_stats(device const T* x [[buffer(0)]], device float* out [[buffer(1)]],
                          constant StatsParams& p [[buffer(2)]], uint2 g [[thread_position_in_grid]]) {
    const uint c = g.x, blk = g.y;
    if (c >= p.channels) return;
    const ulong r0 = ulong(blk) * p.block_rows;
    const ulong r1 = min(r0 + p.block_rows, p.rows);
    float count = 0.0f, mean = 0.0f, m2 = 0.0f, m3 = 0.0f, m4 = 0.0f, absmax = 0.0f;
    for (ulong r = r0; r < r1; ++r) {
        const float v = float(x[r * p.channels + c]);
        if (isnan(v)) continue;
        const float n1 = count;
        const float n = count + 1.0f;
        const float delta = v - mean;
        const float dn = delta / n;
        const float dn2 = dn * dn;
        const float t1 = delta * dn * n1;
        m4 = m4 + t1 * dn2 * (n * n - 3.0f * n + 3.0f) + 6.0f * dn2 * m2 - 4.0f * dn * m3;
        m3 = m3 + t1 * dn * (n - 2.0f) - 3.0f * dn * m2;
        m2 = m2 + t1;
        mean = mean + dn;
        count = n;
        absmax = max(absmax, abs(v));
    }
    device float* o = out + (ulong(blk) * p.channels + c) * 6;
    o[0] = count;
    o[1] = mean;
    o[2] = m2;
    o[3] = m3;
    o[4] = m4;
    o[5] = absmax;
}
template [[host_name("channel_stats_f32")]] kernel void channel_stats<float>(device const float*, device float*, constant StatsParams&, uint2);
template [[host_name("channel_stats_bf16")]] kernel void channel_stats<bfloat>(device const bfloat*, device float*, constant StatsParams&, uint2);
template [[host_name("channel_stats_f16")]] kernel void channel_stats<half>(device const half*, device float*, constant StatsParams&, uint2);
