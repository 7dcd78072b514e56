// Column L2 norms: a block owns 32 columns of one prompt; its 16 token lanes split the tokens and
// the partial sums are added in a fixed order, so the result is deterministic for any T.
#include <c10/cuda/CUDAException.h>

#include "cuda/common.cuh"

namespace mumoe::cuda {
namespace {

constexpr int kCols = 32;        // one warp of consecutive columns: coalesced loads
constexpr int kTokenLanes = 16;  // tokens are split over this many warps

template <class S>
__global__ void __launch_bounds__(kCols * kTokenLanes)
    col_norms_kernel(const S* __restrict__ x, const uint8_t* __restrict__ keep,
                     float* __restrict__ out, int64_t T, int64_t d) {
  __shared__ float partial[kTokenLanes][kCols + 1];
  const int64_t b = blockIdx.x;
  const int64_t j = int64_t(blockIdx.y) * kCols + threadIdx.x;
  const S* xb = x + b * T * d;
  const uint8_t* kb = keep ? keep + b * T : nullptr;
  float acc = 0.f;
  if (j < d) {
#pragma unroll 4
    for (int64_t t = threadIdx.y; t < T; t += kTokenLanes) {
      if (kb && !kb[t]) continue;
      const float v = to_float(xb[t * d + j]);
      acc = fmaf(v, v, acc);
    }
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < d) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kTokenLanes; ++i) s += partial[i][threadIdx.x];
    out[b * d + j] = sqrtf(s);
  }
}

template <class S>
void launch(const void* x, const uint8_t* keep, float* out, int64_t B, int64_t T, int64_t d,
            cudaStream_t stream) {
  const dim3 block(kCols, kTokenLanes), grid(unsigned(B), unsigned((d + kCols - 1) / kCols));
  col_norms_kernel<S><<<grid, block, 0, stream>>>(static_cast<const S*>(x), keep, out, T, d);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void launch_col_norms(DType dt, const void* x, const uint8_t* keep, float* out, int64_t B,
                      int64_t T, int64_t d, cudaStream_t stream) {
  if (B == 0 || d == 0) return;
  switch (dt) {
    case DType::f32: launch<float>(x, keep, out, B, T, d, stream); break;
    case DType::f16: launch<__half>(x, keep, out, B, T, d, stream); break;
    case DType::bf16: launch<__nv_bfloat16>(x, keep, out, B, T, d, stream); break;
  }
}

}  // namespace mumoe::cuda
