// Shared CUDA helpers: dtype loads as float, launch declarations of this folder's kernels.
#pragma once
#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace mumoe::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// at::ScalarType -> CUDA element type for a lambda `f(scalar_t{})`.
template <class F>
void dispatch_float(at::ScalarType s, F&& f) {
  switch (s) {
    case at::kFloat: f(float{}); break;
    case at::kHalf: f(__half{}); break;
    case at::kBFloat16: f(__nv_bfloat16{}); break;
    default: TORCH_CHECK_TYPE(false, "mumoe: unsupported dtype ", s);
  }
}

void launch_col_norms(const at::Tensor& x, const at::Tensor& keep, at::Tensor& out, int64_t B,
                      int64_t T, int64_t d);

}  // namespace mumoe::cuda
