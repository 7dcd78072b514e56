// Per-row Wanda selection, one 256-thread block per (prompt, row): the row's score keys are read
// once into shared memory (rows too long for it recompute keys from global memory instead), four
// radix passes find τ and c on chip, then the row is written in column-ordered tiles as a bool
// mask, a pruned dense row, or a RowSparse row (bitmap words by warp ballot, values by scan).
#include <c10/cuda/CUDAException.h>

#include "cuda/row_select.cuh"

namespace mumoe::cuda {
namespace {

template <class S, Emit E, bool kKeysInSmem>
__global__ void __launch_bounds__(kSelectThreads)
    select_rows_kernel(const S* __restrict__ w, const float* __restrict__ norms, int d_out, int d,
                       int k, void* __restrict__ out, uint32_t* __restrict__ bitmap) {
  extern __shared__ uint32_t smem_keys[];
  __shared__ SelectShared sh;
  const int64_t r = blockIdx.x;  // (prompt, row) pair
  const int64_t b = r / d_out, i = r % d_out;
  const S* wr = w + i * int64_t(d);
  const float* nr = norms + b * int64_t(d);

  if constexpr (kKeysInSmem) {
#pragma unroll 4  // several loads in flight per thread
    for (int j = threadIdx.x; j < d; j += kSelectThreads)
      smem_keys[j] = score_key(to_float(wr[j]), nr[j]);
    __syncthreads();
  }
  auto key_at = [&](int j) -> uint32_t {
    if constexpr (kKeysInSmem) return smem_keys[j];
    else return score_key(to_float(wr[j]), nr[j]);
  };
  const Threshold th = radix_select(key_at, d, k, sh);

  KeepScan scan;
  const int words = (d + 31) / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int tile = 0, col0 = 0; col0 < d; ++tile, col0 += kSelectThreads) {
    const int j = col0 + int(threadIdx.x);
    const bool valid = j < d;
    const uint32_t key = valid ? key_at(j) : 0u;
    int kept_before;
    unsigned warp_bits;
    const bool keep = scan.step(valid, key, th, tile, sh, &kept_before, &warp_bits);
    if constexpr (E == Emit::mask) {
      if (valid) static_cast<bool*>(out)[r * d + j] = keep;
    } else if constexpr (E == Emit::pruned) {
      if (valid) static_cast<S*>(out)[r * d + j] = keep ? wr[j] : zero_of<S>();
    } else {
      const int word = tile * kSelectWarps + warp;  // 32 consecutive columns per warp
      if (lane == 0 && word < words) bitmap[r * words + word] = warp_bits;
      if (keep) static_cast<S*>(out)[r * k + kept_before] = wr[j];
    }
  }
}

template <class S, Emit E, bool kKeysInSmem>
void launch_one(const void* w, const float* norms, int64_t rows, int64_t d_out, int64_t d,
                int64_t k, void* out, uint32_t* bitmap, size_t smem, cudaStream_t stream) {
  auto kernel = select_rows_kernel<S, E, kKeysInSmem>;
  if (smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<unsigned(rows), kSelectThreads, smem, stream>>>(static_cast<const S*>(w), norms, int(d_out),
                                                           int(d), int(k), out, bitmap);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Largest dynamic shared memory a block of this kernel may opt into on the current device.
template <class S, Emit E>
size_t max_dynamic_smem() {
  int dev = 0, optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaFuncAttributes attr{};
  C10_CUDA_CHECK(cudaFuncGetAttributes(&attr, select_rows_kernel<S, E, true>));
  return size_t(optin) > attr.sharedSizeBytes ? size_t(optin) - attr.sharedSizeBytes : 0;
}

template <class S, Emit E>
void launch_typed(const void* w, const float* norms, int64_t rows, int64_t d_out, int64_t d,
                  int64_t k, void* out, uint32_t* bitmap, cudaStream_t stream) {
  const size_t smem = size_t(d) * sizeof(uint32_t);
  if (smem <= max_dynamic_smem<S, E>())
    launch_one<S, E, true>(w, norms, rows, d_out, d, k, out, bitmap, smem, stream);
  else
    launch_one<S, E, false>(w, norms, rows, d_out, d, k, out, bitmap, 0, stream);
}

template <class S>
void launch_emit(Emit emit, const void* w, const float* norms, int64_t rows, int64_t d_out,
                 int64_t d, int64_t k, void* out, uint32_t* bitmap, cudaStream_t stream) {
  switch (emit) {
    case Emit::mask: launch_typed<S, Emit::mask>(w, norms, rows, d_out, d, k, out, bitmap, stream); break;
    case Emit::pruned: launch_typed<S, Emit::pruned>(w, norms, rows, d_out, d, k, out, bitmap, stream); break;
    case Emit::compact: launch_typed<S, Emit::compact>(w, norms, rows, d_out, d, k, out, bitmap, stream); break;
  }
}

}  // namespace

void launch_select_rows(DType dt, Emit emit, const void* w, const float* norms, int64_t B,
                        int64_t d_out, int64_t d, int64_t k, void* out, uint32_t* bitmap,
                        cudaStream_t stream) {
  const int64_t rows = B * d_out;
  if (rows == 0) return;
  switch (dt) {
    case DType::f32: launch_emit<float>(emit, w, norms, rows, d_out, d, k, out, bitmap, stream); break;
    case DType::f16: launch_emit<__half>(emit, w, norms, rows, d_out, d, k, out, bitmap, stream); break;
    case DType::bf16: launch_emit<__nv_bfloat16>(emit, w, norms, rows, d_out, d, k, out, bitmap, stream); break;
  }
}

}  // namespace mumoe::cuda
