// Block-wide pieces of the per-row selection (one 256-thread block per (prompt, row)):
// score keys, the 4 x 8-bit radix select of the k-th largest key, and the column-ordered keep scan.
#pragma once
#include "cuda/common.cuh"

namespace mumoe::cuda {

constexpr int kSelectThreads = 256;  // = number of radix bins: one bin per thread in the scan
constexpr int kSelectWarps = kSelectThreads / 32;

// Bits of |w|*|n| with the sign cleared: one IEEE multiply (never fused), identical to the CPU key.
__device__ __forceinline__ uint32_t score_key(float w, float n) {
  return __float_as_uint(__fmul_rn(fabsf(w), fabsf(n))) & 0x7fffffffu;
}

struct SelectShared {
  int hist[kSelectThreads];
  int warp_sums[kSelectWarps];
  int tile_counts[2][kSelectWarps];  // double-buffered per-warp (gt << 16 | eq) counts
  uint32_t bin;
  int want;
};

// τ (the k-th largest key) and c (how many keys equal to τ are kept, 1 <= c <= count(τ)).
struct Threshold {
  uint32_t tau;
  int ties_kept;
};

// Inclusive prefix sum over the block's threads in thread order; ends with a barrier-protected
// read of warp_sums, so the caller needs a __syncthreads before warp_sums is written again.
__device__ __forceinline__ int block_inclusive_scan(int v, SelectShared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_inclusive_scan(v, lane);
  if (lane == 31) sh.warp_sums[warp] = v;
  __syncthreads();
  for (int i = 0; i < warp; ++i) v += sh.warp_sums[i];
  return v;
}

// Exact k-th largest of the row's keys, `key(j)` for j < d, by four 8-bit digits from the top.
// Each pass counts only the keys whose higher digits match the prefix found so far.
template <class KeyAt>
__device__ Threshold radix_select(KeyAt key, int d, int k, SelectShared& sh) {
  uint32_t prefix = 0;
  int want = k;  // rank of the wanted key among the remaining candidates, 1-based from the top
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    const uint32_t high = pass == 0 ? 0u : ~0u << (shift + 8);
    sh.hist[threadIdx.x] = 0;
    __syncthreads();
    for (int j = threadIdx.x; j < d; j += kSelectThreads) {
      const uint32_t kj = key(j);
      if ((kj & high) == prefix) atomicAdd(&sh.hist[(kj >> shift) & 0xffu], 1);
    }
    __syncthreads();
    // Thread t holds bin 255 - t, so the inclusive scan counts the candidates in bins >= that bin.
    const int bin = kSelectThreads - 1 - int(threadIdx.x);
    const int count = sh.hist[bin];
    const int at_or_above = block_inclusive_scan(count, sh);
    const int above = at_or_above - count;
    if (above < want && at_or_above >= want) {  // exactly one thread: want is in [1, candidates]
      sh.bin = uint32_t(bin);
      sh.want = want - above;
    }
    __syncthreads();
    prefix |= sh.bin << shift;
    want = sh.want;
  }
  return Threshold{prefix, want};
}

// Keep decisions of one column-ordered tile of kSelectThreads columns starting at `col0`:
// thread t decides column col0 + t. Keeps key > τ, and key == τ while fewer than c equal keys
// came before it in column order. `kept_before` is the number of kept columns of the row before
// this one (its position among the row's values). Carries advance by the tile's totals.
struct KeepScan {
  int gt_carry = 0;  // keys > τ in earlier tiles
  int eq_carry = 0;  // keys == τ in earlier tiles

  __device__ __forceinline__ bool step(bool valid, uint32_t key, const Threshold& th, int tile,
                                       SelectShared& sh, int* kept_before, unsigned* warp_bits) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool gt = valid && key > th.tau, eq = valid && key == th.tau;
    const unsigned bg = __ballot_sync(kFullMask, gt), be = __ballot_sync(kFullMask, eq);
    int* counts = sh.tile_counts[tile & 1];
    if (lane == 0) counts[warp] = (__popc(bg) << 16) | __popc(be);
    __syncthreads();
    int before = 0, total = 0;
#pragma unroll
    for (int i = 0; i < kSelectWarps; ++i) {
      const int c = counts[i];
      if (i < warp) before += c;
      total += c;
    }
    const unsigned lt = lanemask_lt();
    const int gt_before = gt_carry + (before >> 16) + __popc(bg & lt);
    const int eq_before = eq_carry + (before & 0xffff) + __popc(be & lt);
    const bool keep = gt || (eq && eq_before < th.ties_kept);
    *kept_before = gt_before + min(eq_before, th.ties_kept);
    *warp_bits = __ballot_sync(kFullMask, keep);
    gt_carry += total >> 16;
    eq_carry += total & 0xffff;
    return keep;
  }
};

}  // namespace mumoe::cuda
