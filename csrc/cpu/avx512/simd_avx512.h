// AVX-512 building blocks shared by this folder's kernels (internal linkage: compiled with this
// folder's flags only).
#pragma once
#include <immintrin.h>

#include "cpu/scalar_helpers.h"

namespace mumoe::cpu::avx512 {
namespace {

// Mask of the first n of 16 lanes.
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Mask of the first n of 32 lanes (16-bit elements).
inline __mmask32 lanes32(int64_t n) {
  return n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : (__mmask32(1) << n) - 1;
}

// 16 packed 16-bit floats widened to fp32.
template <DType DT>
inline __m512 widen16(__m256i h) {
  if constexpr (DT == DType::f16) return _mm512_cvtph_ps(h);
  else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 weights w[j..j+16) as fp32, lanes outside `m` zero (and not read).
template <DType DT>
inline __m512 load16(const void* w, int64_t j, __mmask16 m) {
  if constexpr (DT == DType::f32) return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + j);
  else return widen16<DT>(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + j));
}

// 16 fp32 lanes rounded to nearest even into 16-bit floats (bf16: the scalar rounding applied to
// the whole register; AVX512-BF16's instruction flushes subnormals and is not in this folder's flags).
template <DType DT>
inline __m256i narrow16(__m512 v) {
  if constexpr (DT == DType::f16) {
    return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    using u32x16 = uint32_t __attribute__((vector_size(64)));
    return _mm512_cvtepi32_epi16(__m512i(bf16_bits(u32x16(_mm512_castps_si512(v)))));
  }
}

// The 16 bitmap bits of columns j..j+16 (j a multiple of 16).
inline __mmask16 bitmap16(const uint32_t* bitmap, int64_t j) {
  return __mmask16(bitmap[j >> 5] >> (j & 31));
}

// Keep decisions of 16 keys at a time in column order (keys > tau, then the first ties == tau).
struct Keeper {
  __m512i tau;
  int64_t ties_left;
  Keeper(RowThreshold th) : tau(_mm512_set1_epi32(int32_t(th.tau))), ties_left(th.ties_kept) {}
  inline __mmask16 next(const uint32_t* keys, __mmask16 valid) {
    const __m512i v = _mm512_maskz_loadu_epi32(valid, keys);
    const __mmask16 gt = _mm512_mask_cmpgt_epu32_mask(valid, v, tau);
    const __mmask16 eq = _mm512_mask_cmpeq_epi32_mask(valid, v, tau);
    return eq ? __mmask16(take_ties(gt, eq, ties_left)) : gt;
  }
};

// Running sum of w[j] * v[j] over the dropped lanes of 16-column chunks, in two accumulators that
// alternate by chunk (even chunks in acc[0]): pruned_dot and emit_compact_dot share this order, so
// the plain phase and the prefill give the same offsets bit for bit. Callers step 32 columns at a
// time and name the accumulator, so both stay in registers.
inline __m512 add_dropped(__m512 acc, __m512 wf, const float* v, int64_t j, __mmask16 drop) {
  return _mm512_fmadd_ps(_mm512_maskz_mov_ps(drop, wf), _mm512_maskz_loadu_ps(drop, v + j), acc);
}

}  // namespace
}  // namespace mumoe::cpu::avx512
