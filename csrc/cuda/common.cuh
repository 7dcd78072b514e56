// Shared CUDA helpers: element types, conversions, warp primitives and 16-byte vector loads.
// Kernel files include only this and CUDA/c10 exception headers (no ATen: plain device code).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace mumoe::cuda {

enum class DType { f32, f16, bf16 };

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class S>
__device__ __forceinline__ S from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <class S>
__device__ __forceinline__ S zero_of();
template <>
__device__ __forceinline__ float zero_of<float>() { return 0.0f; }
template <>
__device__ __forceinline__ __half zero_of<__half>() { return __ushort_as_half(0); }
template <>
__device__ __forceinline__ __nv_bfloat16 zero_of<__nv_bfloat16>() { return __ushort_as_bfloat16(0); }

// Low and high 16-bit halves of a 32-bit word as floats (little-endian element order).
__device__ __forceinline__ float lo_as_float(uint32_t u, __half) { return __half2float(__ushort_as_half(u & 0xffffu)); }
__device__ __forceinline__ float hi_as_float(uint32_t u, __half) { return __half2float(__ushort_as_half(u >> 16)); }
__device__ __forceinline__ float lo_as_float(uint32_t u, __nv_bfloat16) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float hi_as_float(uint32_t u, __nv_bfloat16) { return __uint_as_float(u & 0xffff0000u); }

// kVec elements fill 16 bytes; load_vec reads them from a 16-byte-aligned address as floats.
template <class S>
struct Vec16 {
  static constexpr int kVec = 16 / int(sizeof(S));
};

__device__ __forceinline__ void load_vec(const float* p, float* f) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
}
template <class S>
__device__ __forceinline__ void load_vec(const S* p, float* f) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = lo_as_float(w[i], S{});
    f[2 * i + 1] = hi_as_float(w[i], S{});
  }
}

__device__ __forceinline__ unsigned lanemask_lt() {
  unsigned m;
  asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
  return m;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ int warp_sum(int v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ int warp_inclusive_scan(int v, int lane) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(kFullMask, v, o);
    if (lane >= o) v += n;
  }
  return v;
}

// ---- host launchers (raw pointers, current stream passed in; each checks its launch) ----------

// Column sums of squares -> L2 norms: x (B, T, d), keep (B, T) bytes or null, out (B, d) fp32.
void launch_col_norms(DType dt, const void* x, const uint8_t* keep, float* out, int64_t B,
                      int64_t T, int64_t d, cudaStream_t stream);

enum class Emit { mask, pruned, compact };

// Per (prompt, row) selection of the k largest |W_ij|*|n_j| (ties to the lower column):
// mask -> out bool (B?, d_out, d); pruned -> out (B?, d_out, d) in W's dtype;
// compact -> bitmap int32 (B?, d_out, ceil(d/32)) and out = values (B?, d_out, k).
void launch_select_rows(DType dt, Emit emit, const void* w, const float* norms, int64_t B,
                        int64_t d_out, int64_t d, int64_t k, void* out, uint32_t* bitmap,
                        cudaStream_t stream);

// y (Bx, T, d_out) = x (Bx, T, d) @ (W ⊙ M)ᵀ + bias for T <= kMaxGemvTokens; mask rows are
// per sample when mask_batched, weight (d_out, d) shared.
void launch_masked_gemv(DType dt, const void* x, const void* w, const bool* mask, bool mask_batched,
                        const void* bias, void* y, int64_t Bx, int64_t T, int64_t d_out, int64_t d,
                        cudaStream_t stream);

// y (Bx, T, d_out) = x @ dense(bitmap, values)ᵀ + bias for T <= kMaxGemvTokens, streaming only
// the compact weights; the RowSparse is per sample when rs_batched.
void launch_sparse_gemv(DType dt, const void* x, const uint32_t* bitmap, const void* values,
                        bool rs_batched, const void* bias, void* y, int64_t Bx, int64_t T,
                        int64_t d_out, int64_t d, int64_t k, cudaStream_t stream);

// RowSparse (rows, words) bitmap + (rows, k) values -> dense (rows, d) in the values' dtype.
void launch_expand_rows(DType dt, const uint32_t* bitmap, const void* values, int64_t rows,
                        int64_t d, int64_t k, void* dense, cudaStream_t stream);

constexpr int64_t kMaxGemvTokens = 8;

}  // namespace mumoe::cuda
