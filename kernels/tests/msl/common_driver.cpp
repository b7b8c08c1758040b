// Runs the scalar functions of src/metal/common.metal on the host, through
// the stand-in <metal_stdlib> beside this file, for tests/msl_check.rs: one
// query a line on stdin, one answer a line on stdout (hex bit patterns).
//   p c0 c1 c2 c3 k0 k1   wb_philox      -> four words
//   g x                   wb_gumbel      -> float bits
//   n x                   wb_neg_log_uniform -> float bits
//   l b                   wb_log of the float with bits b -> float bits
//   b s i t j             wb_better(float bits s, i, float bits t, j) -> 0/1
//   k x                   wb_bucket -> decimal
//   h x / H x             float bits x rounded to half / bfloat -> 16 bits
//   w h / W h             half / bfloat bits h widened -> float bits
//   G c s                 hash of wb_gumbel over x = c·2^24 + k·s in
//                         [c·2^24, (c+1)·2^24): h = h·0x100000001b3 + bits,
//                         from h = c (u64, wrapping)
#include "common.metal"

#include <cstdio>

int main() {
    char op;
    while (std::scanf(" %c", &op) == 1) {
        switch (op) {
            case 'p': {
                uint c[4], k0, k1;
                if (std::scanf("%x %x %x %x %x %x", &c[0], &c[1], &c[2], &c[3], &k0, &k1) != 6) return 2;
                const uint4 r = wb_philox(uint4(c[0], c[1], c[2], c[3]), k0, k1);
                std::printf("%08x %08x %08x %08x\n", r.x, r.y, r.z, r.w);
                break;
            }
            case 'g':
            case 'n':
            case 'l': {
                uint x;
                if (std::scanf("%x", &x) != 1) return 2;
                const float v = op == 'g' ? wb_gumbel(x) : op == 'n' ? wb_neg_log_uniform(x) : wb_log(as_type<float>(x));
                std::printf("%08x\n", as_type<uint>(v));
                break;
            }
            case 'k': {
                uint x;
                if (std::scanf("%x", &x) != 1) return 2;
                std::printf("%u\n", wb_bucket(x));
                break;
            }
            case 'b': {
                uint s, i, t, j;
                if (std::scanf("%x %x %x %x", &s, &i, &t, &j) != 4) return 2;
                std::printf("%d\n", wb_better(as_type<float>(s), i, as_type<float>(t), j) ? 1 : 0);
                break;
            }
            case 'h':
            case 'H': {
                uint x;
                if (std::scanf("%x", &x) != 1) return 2;
                const float f = as_type<float>(x);
                std::printf("%04x\n", op == 'h' ? uint(half(f).bits) : uint(bfloat(f).bits));
                break;
            }
            case 'w':
            case 'W': {
                uint h;
                if (std::scanf("%x", &h) != 1 || h > 0xffff) return 2;
                float f;
                if (op == 'w') {
                    half v;
                    v.bits = uint16_t(h);
                    f = v;
                } else {
                    bfloat v;
                    v.bits = uint16_t(h);
                    f = v;
                }
                std::printf("%08x\n", as_type<uint>(f));
                break;
            }
            case 'G': {
                uint c, stride;
                if (std::scanf("%x %x", &c, &stride) != 2 || stride == 0) return 2;
                unsigned long long h = c;
                for (unsigned long long x = (unsigned long long)c << 24, e = x + (1ull << 24); x < e; x += stride)
                    h = h * 0x100000001b3ull + as_type<uint>(wb_gumbel(uint(x)));
                std::printf("%016llx\n", h);
                break;
            }
            default:
                return 2;
        }
    }
    return 0;
}
