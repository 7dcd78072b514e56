// Column L2 norms: one thread per column, tokens walked in a coalesced sweep over rows.
#include <ATen/cuda/CUDAContext.h>

#include "cuda/common.cuh"

namespace mumoe::cuda {
namespace {

template <class T>
__global__ void col_norms_kernel(const T* __restrict__ x, const uint8_t* __restrict__ keep,
                                 float* __restrict__ out, int64_t T_, int64_t d) {
  const int64_t b = blockIdx.y;
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= d) return;
  const T* xb = x + b * T_ * d;
  const uint8_t* kb = keep ? keep + b * T_ : nullptr;
  float acc = 0.f;
  for (int64_t t = 0; t < T_; ++t) {
    if (kb && !kb[t]) continue;
    const float v = to_float(xb[t * d + j]);
    acc = fmaf(v, v, acc);
  }
  out[b * d + j] = sqrtf(acc);
}

}  // namespace

void launch_col_norms(const at::Tensor& x, const at::Tensor& keep, at::Tensor& out, int64_t B,
                      int64_t T, int64_t d) {
  const dim3 block(256), grid((d + 255) / 256, B);
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_float(x.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    col_norms_kernel<scalar_t><<<grid, block, 0, stream>>>(
        static_cast<const scalar_t*>(x.const_data_ptr()),
        keep.defined() ? keep.const_data_ptr<uint8_t>() : nullptr, out.mutable_data_ptr<float>(), T, d);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace mumoe::cuda
