// Small-T masked product y = x (W ⊙ M)ᵀ + b: a warp per output row streams the weight row and its
// mask once (16-byte weight loads when rows are aligned) and serves all T <= 8 tokens from it.
#include <c10/cuda/CUDAException.h>

#include "cuda/gemv_common.cuh"

namespace mumoe::cuda {
namespace {

// G mask bytes from a G-byte aligned address (G = 4 or 8) as a G-bit keep set.
template <int G>
__device__ __forceinline__ uint32_t load_mask_bits(const uint8_t* p) {
  uint32_t bits = 0;
  if constexpr (G == 8) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      bits |= uint32_t(((v.x >> (8 * q)) & 0xffu) != 0u) << q;
      bits |= uint32_t(((v.y >> (8 * q)) & 0xffu) != 0u) << (q + 4);
    }
  } else {
    const uint32_t v = *reinterpret_cast<const uint32_t*>(p);
#pragma unroll
    for (int q = 0; q < 4; ++q) bits |= uint32_t(((v >> (8 * q)) & 0xffu) != 0u) << q;
  }
  return bits;
}

template <class S, int MaxT, bool kVec>
__global__ void __launch_bounds__(kGemvThreads)
    masked_gemv_kernel(const S* __restrict__ x, const S* __restrict__ w,
                       const uint8_t* __restrict__ mask, bool mask_batched, const S* __restrict__ bias,
                       S* __restrict__ y, int T, int64_t d_out, int d, int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warps only: no block-wide barrier below
  const int64_t b = r / d_out, i = r % d_out;
  const S* xb = x + b * T * d;
  const S* wr = w + i * d;
  const uint8_t* mr = mask + (mask_batched ? r : i) * d;
  float acc[MaxT];
#pragma unroll
  for (int t = 0; t < MaxT; ++t) acc[t] = 0.f;

  if constexpr (kVec) {
    constexpr int G = Vec16<S>::kVec;
    for (int c = lane * G; c < d; c += 32 * G) {
      float wv[G];
      load_vec(wr + c, wv);
      const uint32_t keep = load_mask_bits<G>(mr + c);
#pragma unroll
      for (int p = 0; p < G; ++p) wv[p] = (keep >> p) & 1u ? wv[p] : 0.f;
#pragma unroll
      for (int t = 0; t < MaxT; ++t) {
        if (t >= T) break;
        float xv[G];
        load_vec(xb + int64_t(t) * d + c, xv);
#pragma unroll
        for (int p = 0; p < G; ++p) acc[t] = fmaf(wv[p], xv[p], acc[t]);
      }
    }
  } else {
    for (int c = lane; c < d; c += 32) {
      const float wv = mr[c] ? to_float(wr[c]) : 0.f;
#pragma unroll
      for (int t = 0; t < MaxT; ++t) {
        if (t >= T) break;
        acc[t] = fmaf(wv, to_float(xb[int64_t(t) * d + c]), acc[t]);
      }
    }
  }
  store_row<S, MaxT>(acc, T, bias, y, b, i, d_out);
}

template <class S, int MaxT>
void launch_tokens(const void* x, const void* w, const bool* mask, bool mask_batched,
                   const void* bias, void* y, int64_t T, int64_t d_out, int64_t d, int64_t rows,
                   cudaStream_t stream) {
  constexpr int G = Vec16<S>::kVec;
  const bool vec = d % G == 0 && aligned16(x) && aligned16(w) &&
                   reinterpret_cast<uintptr_t>(mask) % G == 0;
  const unsigned grid = unsigned((rows + kGemvWarps - 1) / kGemvWarps);
  auto launch_with = [&](auto kernel) {
    kernel<<<grid, kGemvThreads, 0, stream>>>(
        static_cast<const S*>(x), static_cast<const S*>(w), reinterpret_cast<const uint8_t*>(mask),
        mask_batched, static_cast<const S*>(bias), static_cast<S*>(y), int(T), d_out, int(d), rows);
  };
  if (vec) launch_with(masked_gemv_kernel<S, MaxT, true>);
  else launch_with(masked_gemv_kernel<S, MaxT, false>);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class S>
void launch_typed(const void* x, const void* w, const bool* mask, bool mask_batched,
                  const void* bias, void* y, int64_t Bx, int64_t T, int64_t d_out, int64_t d,
                  cudaStream_t stream) {
  const int64_t rows = Bx * d_out;
  if (rows == 0) return;
  if (T == 1) launch_tokens<S, 1>(x, w, mask, mask_batched, bias, y, T, d_out, d, rows, stream);
  else launch_tokens<S, kMaxGemvTokens>(x, w, mask, mask_batched, bias, y, T, d_out, d, rows, stream);
}

}  // namespace

void launch_masked_gemv(DType dt, const void* x, const void* w, const bool* mask, bool mask_batched,
                        const void* bias, void* y, int64_t Bx, int64_t T, int64_t d_out, int64_t d,
                        cudaStream_t stream) {
  switch (dt) {
    case DType::f32: launch_typed<float>(x, w, mask, mask_batched, bias, y, Bx, T, d_out, d, stream); break;
    case DType::f16: launch_typed<__half>(x, w, mask, mask_batched, bias, y, Bx, T, d_out, d, stream); break;
    case DType::bf16: launch_typed<__nv_bfloat16>(x, w, mask, mask_batched, bias, y, Bx, T, d_out, d, stream); break;
  }
}

}  // namespace mumoe::cuda
