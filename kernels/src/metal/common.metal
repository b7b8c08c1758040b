// Shared by the Metal kernels of wb-kernels; the Rust side prepends this file
// to each op's source before compiling it (fast math off, so IEEE rounding
// holds and nothing is contracted or reordered).
#include <metal_stdlib>
using namespace metal;

// The exact Gumbel noise: a transcription of src/sample/noise.rs (see there).
// Every step is an explicit fma, multiply or add; constants are bit patterns.
inline float wb_bits(uint b) { return as_type<float>(b); }

inline float wb_log(float x) {
    uint bits = as_type<uint>(x);
    int e = int((bits >> 23) & 0xffu) - 127;
    float m = as_type<float>((bits & 0x007fffffu) | 0x3f800000u);
    if (m > wb_bits(0x3fb504f3u)) {
        m = m * 0.5f;
        e += 1;
    }
    float f = m - 1.0f;
    float z = f * f;
    float p = wb_bits(0x3d9021bbu);
    p = fma(p, f, wb_bits(0xbdebd1b8u));
    p = fma(p, f, wb_bits(0x3def251au));
    p = fma(p, f, wb_bits(0xbdfe5d4fu));
    p = fma(p, f, wb_bits(0x3e11e9bfu));
    p = fma(p, f, wb_bits(0xbe2aae50u));
    p = fma(p, f, wb_bits(0x3e4cceacu));
    p = fma(p, f, wb_bits(0xbe7ffffcu));
    p = fma(p, f, wb_bits(0x3eaaaaaau));
    float ef = float(e);
    float y = (f * z) * p;
    y = fma(ef, wb_bits(0xb95e8083u), y);
    y = fma(-0.5f, z, y);
    float r = f + y;
    return fma(ef, wb_bits(0x3f318000u), r);
}

inline float wb_u31(uint x) { return fma(float(x >> 8), 256.0f, float(x & 0xffu)); }

inline float wb_neg_log_uniform(uint x) {
    float two_m32 = wb_bits(0x2f800000u);
    if (x < 0x80000000u) {
        float u = (wb_u31(x) + 0.5f) * two_m32;
        return -wb_log(u);
    }
    float v = (wb_u31(~x) + 0.5f) * two_m32;
    if (v <= 0.0625f) {
        float s = 0.125f;
        s = fma(s, v, wb_bits(0x3e124925u));
        s = fma(s, v, wb_bits(0x3e2aaaabu));
        s = fma(s, v, wb_bits(0x3e4ccccdu));
        s = fma(s, v, 0.25f);
        s = fma(s, v, wb_bits(0x3eaaaaabu));
        s = fma(s, v, 0.5f);
        s = fma(s, v, 1.0f);
        return s * v;
    }
    return -wb_log(1.0f - v);
}

inline float wb_gumbel(uint x) { return -wb_log(wb_neg_log_uniform(x)); }

// Philox4x32-10 (src/philox.rs).
inline uint4 wb_philox(uint4 c, uint k0, uint k1) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint hi0 = mulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        uint hi1 = mulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    }
    return c;
}

// The bucket of Philox bits x in the noise bound table (src/sample/bound.rs,
// and `bucket` in the CUDA sampler): the top 10 bits; the top 8 of those
// buckets split again by the next 10 bits. The table holds bucket b's upper
// bound at 2b and its lower bound at 2b + 1.
inline uint wb_bucket(uint x) { return x >= 0xfe000000u ? 1024u + ((x >> 15) & 1023u) : x >> 22; }

// Whether (s, i) beats (b, j): higher score, then lower index; NaN never wins.
inline bool wb_better(float s, uint i, float b, uint j) {
    if (isnan(s)) return false;
    if (isnan(b)) return true;
    return s > b || (s == b && i < j);
}
