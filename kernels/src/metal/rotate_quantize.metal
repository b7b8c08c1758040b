// Quantization of rows already rotated into f32 (src/quant/mod.rs has the
// rules); on Metal the rotation runs first (hadamard.metal) rather than fused.
// One simdgroup (32 threads) per group.

struct QuantParams {
    ulong groups;
    uint group;
    float clip;
    float qmax;
};

inline float2 wb_group_scale(float absmax, float clip, float qmax) {
    const float range = clip * absmax;
    const float scale = range / qmax;
    const bool ok = isfinite(scale) && scale > 0.0f;
    return float2(scale, ok ? qmax / range : 0.0f);
}

inline int wb_code(float y, float inv, float qmax) {
    const float r = rint(y * inv);
    if (isnan(r)) return 0;
    return int(min(max(r, -qmax), qmax));
}

inline float2 wb_group_of(device const float* yg, constant QuantParams& p, uint lane) {
    float m = 0.0f;
    for (uint i = lane; i < p.group; i += 32) m = max(m, abs(yg[i]));
    m = simd_max(m);
    return wb_group_scale(m, p.clip, p.qmax);
}

kernel void quantize_f32_8(device const float* y [[buffer(0)]], device uchar* codes [[buffer(1)]],
                           device float* scales [[buffer(2)]], constant QuantParams& p [[buffer(3)]],
                           uint sg [[simdgroup_index_in_threadgroup]], uint gid [[threadgroup_position_in_grid]],
                           uint lane [[thread_index_in_simdgroup]]) {
    const ulong g = ulong(gid) * 8 + sg;
    if (g >= p.groups) return;
    device const float* yg = y + g * p.group;
    const float2 s = wb_group_of(yg, p, lane);
    if (lane == 0) scales[g] = s.x;
    for (uint i = lane; i < p.group; i += 32) codes[g * p.group + i] = uchar(wb_code(yg[i], s.y, p.qmax) & 0xff);
}

kernel void quantize_f32_4(device const float* y [[buffer(0)]], device uchar* codes [[buffer(1)]],
                           device float* scales [[buffer(2)]], constant QuantParams& p [[buffer(3)]],
                           uint sg [[simdgroup_index_in_threadgroup]], uint gid [[threadgroup_position_in_grid]],
                           uint lane [[thread_index_in_simdgroup]]) {
    const ulong g = ulong(gid) * 8 + sg;
    if (g >= p.groups) return;
    device const float* yg = y + g * p.group;
    const float2 s = wb_group_of(yg, p, lane);
    if (lane == 0) scales[g] = s.x;
    for (uint i = lane; i < p.group / 2; i += 32) {
        const int lo = wb_code(yg[2 * i], s.y, p.qmax) & 0xf;
        const int hi = wb_code(yg[2 * i + 1], s.y, p.qmax) & 0xf;
        codes[g * (p.group / 2) + i] = uchar(lo | (hi << 4));
    }
}

template <typename T>
kernel void fake_f32(device const float* y [[buffer(0)]], device T* out [[buffer(1)]],
                     constant QuantParams& p [[buffer(2)]], uint sg [[simdgroup_index_in_threadgroup]],
                     uint gid [[threadgroup_position_in_grid]], uint lane [[thread_index_in_simdgroup]]) {
    const ulong g = ulong(gid) * 8 + sg;
    if (g >= p.groups) return;
    device const float* yg = y + g * p.group;
    const float2 s = wb_group_of(yg, p, lane);
    for (uint i = lane; i < p.group; i += 32) out[g * p.group + i] = T(float(wb_code(yg[i], s.y, p.qmax)) * s.x);
}
template [[host_name("fake_f32_f32")]] kernel void fake_f32<float>(device const float*, device float*, constant QuantParams&, uint, uint, uint);
template [[host_name("fake_f32_bf16")]] kernel void fake_f32<bfloat>(device const float*, device bfloat*, constant QuantParams&, uint, uint, uint);
template [[host_name("fake_f32_f16")]] kernel void fake_f32<half>(device const float*, device half*, constant QuantParams&, uint, uint, uint);

struct DequantParams {
    ulong total;
    uint group;
};

kernel void dequantize_8(device const uchar* codes [[buffer(0)]], device const float* scales [[buffer(1)]],
                         device float* out [[buffer(2)]], constant DequantParams& p [[buffer(3)]],
                         uint i [[thread_position_in_grid]]) {
    if (i >= p.total) return;
    out[i] = float(as_type<char>(codes[i])) * scales[i / p.group];
}

kernel void dequantize_4(device const uchar* codes [[buffer(0)]], device const float* scales [[buffer(1)]],
                         device float* out [[buffer(2)]], constant DequantParams& p [[buffer(3)]],
                         uint i [[thread_position_in_grid]]) {
    if (i >= p.total) return;
    const int nib = (codes[i / 2] >> (4 * (i % 2))) & 0xf;
    out[i] = float((nib ^ 8) - 8) * scales[i / p.group];
}
