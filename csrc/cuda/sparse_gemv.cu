// Small-T product with a RowSparse weight, streaming only bitmap + packed values (the decode path).
// A warp walks its row in chunks of 32 bitmap words (1024 columns): lane l loads word l, a warp
// scan of the popcounts gives every word's first value index, the chunk's values are copied into
// a per-warp shared buffer with coalesced 16-byte loads, and then each lane handles G = 16 bytes
// worth of consecutive columns (8 in 16-bit, 4 in fp32) with one vector load of x per token.
// Few rows (small d_out, T = 1) split each row's chunks over W warps and add the parts in shared memory.
#include <c10/cuda/CUDAException.h>

#include "cuda/gemv_common.cuh"

namespace mumoe::cuda {
namespace {

constexpr int kChunkWords = 32;
constexpr int kChunkCols = 32 * kChunkWords;

// Shared buffer of one warp: a chunk's values (at most kChunkCols) plus up to 15 bytes of lead.
template <class S>
struct StageBuf {
  static constexpr int kGranules = kChunkCols * int(sizeof(S)) / 16 + 1;
};

// Copies src[0, n) into the 16-byte aligned buffer so that element m lands at index lead + m,
// where lead = (src % 16) / sizeof(S); the aligned interior moves as 16-byte streaming loads and
// only the ragged ends element by element, so nothing outside src[0, n) is read. Returns lead.
template <class S>
__device__ __forceinline__ int stage_values(const S* src, int n, uint4* buf, int lane) {
  constexpr uintptr_t es = sizeof(S);
  const uintptr_t a = reinterpret_cast<uintptr_t>(src), a0 = a & ~uintptr_t(15);
  const int lead = int((a - a0) / es);
  S* dst = reinterpret_cast<S*>(buf) + lead;
  if (n <= 0) return lead;
  const uintptr_t e = a + uintptr_t(n) * es;
  const uintptr_t A = (a + 15) & ~uintptr_t(15), E = e & ~uintptr_t(15);
  if (A < E) {
    const int granules = int((E - A) / 16);
    const uint4* g = reinterpret_cast<const uint4*>(A);
    uint4* s = buf + (A - a0) / 16;
    for (int q = lane; q < granules; q += 32) s[q] = __ldcs(g + q);
    const int head = int((A - a) / es), tail = int((E - a) / es);  // head, n - tail < 16 / es
    if (lane < head) dst[lane] = src[lane];
    if (lane < 8 && tail + lane < n) dst[tail + lane] = src[tail + lane];
  } else if (lane < n) {  // no whole aligned granule: n * es < 32
    dst[lane] = src[lane];
  }
  return lead;
}

// Set bits in words [w0, w1) of a bitmap row, summed over the warp (every lane gets the total).
__device__ __forceinline__ int popc_words(const uint32_t* bm, int w0, int w1, int lane) {
  int s = 0;
  for (int q = w0 + lane; q < w1; q += 32) s += __popc(bm[q]);
  return warp_sum(s);
}

template <class S, int MaxT>
__global__ void __launch_bounds__(kGemvThreads)
    sparse_gemv_kernel(const S* __restrict__ x, const uint32_t* __restrict__ bitmap,
                       const S* __restrict__ values, bool rs_batched, const S* __restrict__ bias,
                       S* __restrict__ y, int T, int64_t d_out, int d, int words, int k,
                       int64_t rows, int split, bool vec_x) {
  constexpr int G = Vec16<S>::kVec;         // consecutive columns per lane in a step
  constexpr int kLanesPerWord = 32 / G;     // a step covers G words
  __shared__ uint4 stage[kGemvWarps][StageBuf<S>::kGranules];
  __shared__ float part_sums[kGemvWarps][kMaxGemvTokens];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int part = warp % split;  // this warp's share of the row's chunks: part, part + split, ...
  const int64_t r = int64_t(blockIdx.x) * (kGemvWarps / split) + warp / split;
  const bool active = r < rows;  // uniform per warp
  const int64_t b = r / d_out, i = r % d_out;
  float acc[MaxT];
#pragma unroll
  for (int t = 0; t < MaxT; ++t) acc[t] = 0.f;

  if (active) {
    const int64_t wrow = rs_batched ? r : i;
    const uint32_t* bm = bitmap + wrow * words;
    const S* vr = values + wrow * k;
    const S* xb = x + b * T * int64_t(d);
    const int chunks = (words + kChunkWords - 1) / kChunkWords;
    int base = part > 0 ? popc_words(bm, 0, min(part * kChunkWords, words), lane) : 0;
    auto load_word = [&](int chunk) {
      const int q = chunk * kChunkWords + lane;
      return chunk < chunks && q < words ? bm[q] : 0u;
    };
    uint32_t next_word = load_word(part);
    for (int c = part; c < chunks; c += split) {
      const uint32_t word = next_word;
      next_word = load_word(c + split);  // in flight while this chunk is processed
      const int cnt = __popc(word);
      const int incl = warp_inclusive_scan(cnt, lane);
      const int excl = incl - cnt;
      const int total = __shfl_sync(kFullMask, incl, 31);
      const int avail = max(0, min(total, k - base));  // a malformed bitmap never reads past the row
      const int lead = stage_values(vr + base, avail, stage[warp], lane);
      __syncwarp();
      const S* sv = reinterpret_cast<const S*>(stage[warp]) + lead;
#pragma unroll
      for (int u = 0; u < kChunkWords / G; ++u) {
        const int wl = u * G + lane / kLanesPerWord;  // word of this lane within the chunk
        const int bit0 = (lane % kLanesPerWord) * G;
        const uint32_t wv = __shfl_sync(kFullMask, word, wl);
        int off = __shfl_sync(kFullMask, excl, wl) + __popc(wv & ((1u << bit0) - 1u));
        const uint32_t bits = (wv >> bit0) & ((1u << G) - 1u);
        const int col0 = (c * kChunkWords + wl) * 32 + bit0;
        if (bits == 0u || col0 >= d) continue;
        float v[G];  // the lane's G columns as a dense fp32 slice (zeros where not kept)
#pragma unroll
        for (int p = 0; p < G; ++p) {
          const bool kept = (bits >> p) & 1u;
          v[p] = kept && off < avail ? to_float(sv[off]) : 0.f;
          off += kept;
        }
#pragma unroll
        for (int t = 0; t < MaxT; ++t) {
          if (t >= T) break;
          const S* xt = xb + int64_t(t) * d + col0;
          float xv[G];
          if (vec_x) {
            load_vec(xt, xv);
          } else {
#pragma unroll
            for (int p = 0; p < G; ++p) xv[p] = col0 + p < d ? to_float(xt[p]) : 0.f;
          }
#pragma unroll
          for (int p = 0; p < G; ++p) acc[t] = fmaf(v[p], xv[p], acc[t]);
        }
      }
      base += total;
      if (split > 1)
        base += popc_words(bm, min((c + 1) * kChunkWords, words), min((c + split) * kChunkWords, words), lane);
      __syncwarp();  // the next chunk overwrites stage[warp]
    }
  }

  if (split == 1) {  // uniform over the block
    if (active) store_row<S, MaxT>(acc, T, bias, y, b, i, d_out);
    return;
  }
#pragma unroll
  for (int t = 0; t < MaxT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) part_sums[warp][t] = s;
  }
  __syncthreads();
  if (active && part == 0 && lane < T) {
    float s = 0.f;
    for (int p = 0; p < split; ++p) s += part_sums[warp + p][lane];
    y[(b * T + lane) * d_out + i] = from_float<S>(s + (bias ? to_float(bias[i]) : 0.f));
  }
}

// Warps per row: enough warps in flight to cover the memory latency when rows are few.
int choose_split(int64_t rows, int words) {
  int dev = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int chunks = (words + kChunkWords - 1) / kChunkWords;
  int split = 1;
  while (split < kGemvWarps && rows * split < 16LL * sms && split * 2 <= chunks) split *= 2;
  return split;
}

template <class S, int MaxT>
void launch_tokens(const void* x, const uint32_t* bitmap, const void* values, bool rs_batched,
                   const void* bias, void* y, int64_t T, int64_t d_out, int64_t d, int64_t k,
                   int64_t rows, cudaStream_t stream) {
  const int words = int((d + 31) / 32);
  const int split = choose_split(rows, words);
  const int64_t rows_per_block = kGemvWarps / split;
  const bool vec_x = d % Vec16<S>::kVec == 0 && aligned16(x);
  sparse_gemv_kernel<S, MaxT><<<unsigned((rows + rows_per_block - 1) / rows_per_block), kGemvThreads, 0, stream>>>(
      static_cast<const S*>(x), bitmap, static_cast<const S*>(values), rs_batched,
      static_cast<const S*>(bias), static_cast<S*>(y), int(T), d_out, int(d), words, int(k), rows,
      split, vec_x);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class S>
void launch_typed(const void* x, const uint32_t* bitmap, const void* values, bool rs_batched,
                  const void* bias, void* y, int64_t Bx, int64_t T, int64_t d_out, int64_t d,
                  int64_t k, cudaStream_t stream) {
  const int64_t rows = Bx * d_out;
  if (rows == 0) return;
  if (T == 1) launch_tokens<S, 1>(x, bitmap, values, rs_batched, bias, y, T, d_out, d, k, rows, stream);
  else launch_tokens<S, kMaxGemvTokens>(x, bitmap, values, rs_batched, bias, y, T, d_out, d, k, rows, stream);
}

}  // namespace

void launch_sparse_gemv(DType dt, const void* x, const uint32_t* bitmap, const void* values,
                        bool rs_batched, const void* bias, void* y, int64_t Bx, int64_t T,
                        int64_t d_out, int64_t d, int64_t k, cudaStream_t stream) {
  switch (dt) {
    case DType::f32: launch_typed<float>(x, bitmap, values, rs_batched, bias, y, Bx, T, d_out, d, k, stream); break;
    case DType::f16: launch_typed<__half>(x, bitmap, values, rs_batched, bias, y, Bx, T, d_out, d, k, stream); break;
    case DType::bf16: launch_typed<__nv_bfloat16>(x, bitmap, values, rs_batched, bias, y, Bx, T, d_out, d, k, stream); break;
  }
}

}  // namespace mumoe::cuda
