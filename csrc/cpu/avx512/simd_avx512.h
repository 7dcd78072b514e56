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

// The 16 bitmap bits of columns j..j+16 (j a multiple of 16).
inline __mmask16 bitmap16(const uint32_t* bitmap, int64_t j) {
  return __mmask16(bitmap[j >> 5] >> (j & 31));
}

}  // namespace
}  // namespace mumoe::cpu::avx512
