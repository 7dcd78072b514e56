// Pieces shared by the small-T product kernels (masked and sparse GEMV): a warp owns an output row
// (or a K-split part of one), keeps one fp32 accumulator per token and reduces across lanes.
#pragma once
#include "cuda/common.cuh"

namespace mumoe::cuda {

constexpr int kGemvWarps = 8;
constexpr int kGemvThreads = 32 * kGemvWarps;

// Warp-reduces acc[t] for t < T; lane 0 writes y[(b*T + t)*d_out + i] = acc + bias[i] in S.
template <class S, int MaxT>
__device__ __forceinline__ void store_row(float (&acc)[MaxT], int T, const S* __restrict__ bias,
                                          S* __restrict__ y, int64_t b, int64_t i, int64_t d_out) {
  const float bi = bias ? to_float(bias[i]) : 0.f;
#pragma unroll
  for (int t = 0; t < MaxT; ++t) {
    const float s = warp_sum(acc[t]);
    if (t < T && (threadIdx.x & 31) == 0) y[(b * T + t) * d_out + i] = from_float<S>(s + bi);
  }
}

// Vector paths need 16-byte aligned rows: d a multiple of the vector width and aligned bases.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace mumoe::cuda
