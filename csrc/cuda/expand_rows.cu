// RowSparse -> dense rows for the large-T path (the dense GEMM then runs on the expanded weight).
// A warp per row; lane l writes column l of each 32-column word, its value index being the word's
// first index (warp scan of popcounts) plus the set bits below it: coalesced reads and writes.
#include <c10/cuda/CUDAException.h>

#include "cuda/common.cuh"

namespace mumoe::cuda {
namespace {

constexpr int kWarps = 8;

template <class S>
__global__ void __launch_bounds__(32 * kWarps)
    expand_rows_kernel(const uint32_t* __restrict__ bitmap, const S* __restrict__ values,
                       int64_t rows, int d, int words, int k, S* __restrict__ dense) {
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (r >= rows) return;
  const uint32_t* bm = bitmap + r * words;
  const S* vr = values + r * k;
  S* out = dense + r * d;
  const unsigned lt = lanemask_lt();
  int base = 0;
  for (int w0 = 0; w0 < words; w0 += 32) {
    const uint32_t word = w0 + lane < words ? bm[w0 + lane] : 0u;
    const int cnt = __popc(word);
    const int incl = warp_inclusive_scan(cnt, lane);
    const int excl = incl - cnt;
    const int n = min(32, words - w0);
    for (int u = 0; u < n; ++u) {
      const uint32_t wv = __shfl_sync(kFullMask, word, u);
      const int idx = base + __shfl_sync(kFullMask, excl, u) + __popc(wv & lt);
      const int col = (w0 + u) * 32 + lane;
      if (col < d) out[col] = ((wv >> lane) & 1u) && idx < k ? vr[idx] : zero_of<S>();
    }
    base += __shfl_sync(kFullMask, incl, 31);
  }
}

template <class S>
void launch(const uint32_t* bitmap, const void* values, int64_t rows, int64_t d, int64_t k,
            void* dense, cudaStream_t stream) {
  const unsigned grid = unsigned((rows + kWarps - 1) / kWarps);
  expand_rows_kernel<S><<<grid, 32 * kWarps, 0, stream>>>(
      bitmap, static_cast<const S*>(values), rows, int(d), int((d + 31) / 32), int(k),
      static_cast<S*>(dense));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void launch_expand_rows(DType dt, const uint32_t* bitmap, const void* values, int64_t rows,
                        int64_t d, int64_t k, void* dense, cudaStream_t stream) {
  if (rows == 0) return;
  switch (dt) {
    case DType::f32: launch<float>(bitmap, values, rows, d, k, dense, stream); break;
    case DType::f16: launch<__half>(bitmap, values, rows, d, k, dense, stream); break;
    case DType::bf16: launch<__nv_bfloat16>(bitmap, values, rows, d, k, dense, stream); break;
  }
}

}  // namespace mumoe::cuda
