// bf16 sparse_dot for CPUs that also have AVX512-VBMI2 and AVX512-BF16 (Zen 4, Sapphire Rapids):
// vpexpandw spreads 32 packed values by one bitmap word and vdpbf16ps multiplies them with the
// tokens, which the caller hands over in bf16 (sparse_linear's x has the values' dtype), so the
// inner loop does no conversion. Only this file is compiled for the extra extensions; the avx512
// table points at it when cpu_features() reports them.
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/avx512/simd_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512vbmi2,avx512bf16")

namespace mumoe::cpu::avx512 {
namespace {

// 32 bf16 token values x[j..j+32) (lanes outside `valid` zero).
inline __m512bh tokens32(const uint16_t* x, __mmask32 valid) {
  return (__m512bh)_mm512_maskz_loadu_epi16(valid, x);
}
inline __m512bh tokens32(const uint16_t* x) { return (__m512bh)_mm512_loadu_si512(x); }

// The 32 columns j..j+32 of the row as bf16 (zero where pruned), consuming values[n..].
inline __m512bh weights32(const uint32_t* bitmap, const uint16_t* values, int64_t j, __mmask32 valid,
                          int64_t k, int64_t& n) {
  const __mmask32 m = bitmap[j >> 5] & valid;
  const int c = __builtin_popcount(m);
  const __m512i packed = n + 32 <= k ? _mm512_loadu_si512(values + n)
                                     : _mm512_maskz_loadu_epi16(lanes32(c), values + n);
  n += c;
  return (__m512bh)_mm512_maskz_expand_epi16(m, packed);
}

// Two accumulators per token hide the latency of vdpbf16ps.
template <int T>
void dot_bf16(const uint16_t* x, const uint32_t* bitmap, const uint16_t* values, int64_t d, int64_t k,
              float* out) {
  __m512 acc0[T], acc1[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  int64_t n = 0, j = 0;
  for (; j + 64 <= d; j += 64) {
    // About one line of values per iteration: fetch it 4 KiB ahead into L1, across the page
    // boundaries where the hardware prefetcher stops, and 16 KiB ahead into L2, which keeps more
    // lines in flight from DRAM; the bitmap, a stream of its own, a line (512 columns) 512 B
    // ahead. With both, a loop of 5632 x 2048 layers from DRAM ran 11-13% faster on the AMX Xeon
    // (2 threads: 0.557-0.575 -> 0.477-0.501 ms; docs/generation.md).
    _mm_prefetch(reinterpret_cast<const char*>(values + n) + 4096, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(values + n) + 16384, _MM_HINT_T1);
    if ((j & 511) == 0) _mm_prefetch(reinterpret_cast<const char*>(bitmap + (j >> 5)) + 512, _MM_HINT_T0);
    const __m512bh w0 = weights32(bitmap, values, j, ~__mmask32(0), k, n);
    const __m512bh w1 = weights32(bitmap, values, j + 32, ~__mmask32(0), k, n);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      acc0[t] = _mm512_dpbf16_ps(acc0[t], w0, tokens32(x + t * d + j));
      acc1[t] = _mm512_dpbf16_ps(acc1[t], w1, tokens32(x + t * d + j + 32));
    }
  }
  for (; j < d; j += 32) {
    const __mmask32 valid = lanes32(d - j);
    const __m512bh w = weights32(bitmap, values, j, valid, k, n);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc0[t] = _mm512_dpbf16_ps(acc0[t], w, tokens32(x + t * d + j, valid));
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
}

}  // namespace

void sparse_dot_bf16_vbmi2(const uint16_t* x, int64_t T, const uint32_t* bitmap,
                           const uint16_t* values, int64_t d, int64_t k, float* out) {
  for (int64_t t0 = 0; t0 < T; t0 += 4) {
    const uint16_t* xs = x + t0 * d;
    switch (T - t0) {
      case 1: dot_bf16<1>(xs, bitmap, values, d, k, out + t0); break;
      case 2: dot_bf16<2>(xs, bitmap, values, d, k, out + t0); break;
      case 3: dot_bf16<3>(xs, bitmap, values, d, k, out + t0); break;
      default: dot_bf16<4>(xs, bitmap, values, d, k, out + t0); break;
    }
  }
}

}  // namespace mumoe::cpu::avx512

#pragma GCC pop_options
