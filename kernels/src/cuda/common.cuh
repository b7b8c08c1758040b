// Shared by the CUDA kernels of wb-kernels: element conversions and the
// exact Gumbel noise (a transcription of src/sample/noise.rs).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace wb {

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }

// Round to nearest, ties to even, as half::from_f32 on the CPU.
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// 16-byte vectors of T: the unit of global loads and stores.
template <typename T, int N> struct alignas(sizeof(T) * N) Vec { T v[N]; };

// A 16-byte vector stored by one 16-byte store. Assigned as a struct (or
// through a uint4) a vector of 16-bit values became four 4-byte stores.
template <typename T, int N>
__device__ __forceinline__ void store16(T* p, const Vec<T, N>& v) {
    static_assert(sizeof(Vec<T, N>) == 16, "store16 stores 16 bytes");
    unsigned w[4];
    memcpy(w, &v, 16);
    // No memory clobber: the kernels write each output vector once and
    // never read it back, so other accesses may move around the store.
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(__cvta_generic_to_global(p)), "r"(w[0]),
                 "r"(w[1]), "r"(w[2]), "r"(w[3]));
}

// N elements of a vector to f32 and back; bf16 and f16 in pairs, one
// conversion instruction per pair.
template <typename T, int N>
__device__ __forceinline__ void vec_to_f32(const Vec<T, N>& v, float* out) {
#pragma unroll
    for (int e = 0; e < N; ++e) out[e] = to_f32(v.v[e]);
}
template <int N>
__device__ __forceinline__ void vec_to_f32(const Vec<__nv_bfloat16, N>& v, float* out) {
#pragma unroll
    for (int e = 0; e < N; e += 2) {
        const float2 f = __bfloat1622float2(__halves2bfloat162(v.v[e], v.v[e + 1]));
        out[e] = f.x;
        out[e + 1] = f.y;
    }
}
template <typename T, int N>
__device__ __forceinline__ void f32_to_vec(const float* in, Vec<T, N>& v) {
#pragma unroll
    for (int e = 0; e < N; ++e) v.v[e] = from_f32<T>(in[e]);
}
template <int N>
__device__ __forceinline__ void f32_to_vec(const float* in, Vec<__nv_bfloat16, N>& v) {
#pragma unroll
    for (int e = 0; e < N; e += 2) {
        const __nv_bfloat162 p = __floats2bfloat162_rn(in[e], in[e + 1]);
        v.v[e] = p.x;
        v.v[e + 1] = p.y;
    }
}
template <int N>
__device__ __forceinline__ void f32_to_vec(const float* in, Vec<__half, N>& v) {
#pragma unroll
    for (int e = 0; e < N; e += 2) {
        const __half2 p = __floats2half2_rn(in[e], in[e + 1]);
        v.v[e] = p.x;
        v.v[e + 1] = p.y;
    }
}

}  // namespace wb
