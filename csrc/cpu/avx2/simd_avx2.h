// AVX2 + FMA + F16C building blocks shared by this folder's kernels (internal linkage: compiled
// with this folder's flags only). Full 8-lane chunks are vectorised; row tails go scalar.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "cpu/scalar_helpers.h"

namespace mumoe::cpu::avx2 {
namespace {

// Lookup tables indexed by an 8-bit lane mask: packed 4-bit lane indices that move the set lanes
// to the front (compress) or the first popcount lanes to the set positions (expand), and the
// eight 0/1 bytes of the mask.
struct MaskTables {
  uint32_t compress[256];
  uint32_t expand[256];
  uint64_t bytes[256];
};

constexpr MaskTables make_mask_tables() {
  MaskTables t{};
  for (uint32_t m = 0; m < 256; ++m) {
    uint32_t c = 0, e = 0, n = 0;
    uint64_t b = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      if (!(m >> i & 1u)) continue;
      c |= i << (4 * n);
      e |= n << (4 * i);
      b |= uint64_t(1) << (8 * i);
      ++n;
    }
    t.compress[m] = c;
    t.expand[m] = e;
    t.bytes[m] = b;
  }
  return t;
}

constexpr MaskTables kMaskTables = make_mask_tables();

inline __m256i nibble_indices(uint32_t packed) {
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int32_t(packed)), shifts),
                          _mm256_set1_epi32(0xf));
}

// All-ones 32-bit lanes where bit i of m is set.
inline __m256i lanes_of(uint32_t m) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int32_t(m)), bit), bit);
}

// All-ones 16-bit lanes where bit i of m (16 bits) is set.
inline __m256i lanes16_of(uint32_t m) {
  const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096,
                                        8192, 16384, -32768);
  return _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(int16_t(m)), bit), bit);
}

inline uint32_t bits_of(__m256i lanes) { return uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(lanes))); }

// Eight 16-bit values (raw bits) widened to 32-bit lanes.
inline __m256i widen8_u16(__m128i h) { return _mm256_cvtepu16_epi32(h); }

// The low 16 bits of eight 32-bit lanes, packed into 128 bits.
inline __m128i narrow8_u16(__m256i v) {
  const __m256i packed = _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), v);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

inline __m128i load_u16x8(const uint16_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

template <DType DT>
inline __m256 u16x8_to_ps(__m128i h) {
  if constexpr (DT == DType::f16) return _mm256_cvtph_ps(h);
  else return _mm256_castsi256_ps(_mm256_slli_epi32(widen8_u16(h), 16));
}

// Eight weights w[j..j+8) as fp32.
template <DType DT>
inline __m256 load8(const void* w, int64_t j) {
  if constexpr (DT == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(w) + j);
  else return u16x8_to_ps<DT>(load_u16x8(static_cast<const uint16_t*>(w) + j));
}

// Eight packed 16-bit values starting at p[n], never reading past p[k).
inline __m128i load_packed_u16x8(const uint16_t* p, int64_t n, int64_t k) {
  if (n + 8 <= k) return load_u16x8(p + n);
  alignas(16) uint16_t tmp[8] = {};
  for (int64_t i = 0; i < k - n; ++i) tmp[i] = p[n + i];
  return load_u16x8(tmp);
}

// Eight packed values starting at values[n] as fp32, never reading past values[k).
template <DType DT>
inline __m256 load_packed8(const void* values, int64_t n, int64_t k) {
  if constexpr (DT == DType::f32) {
    const float* p = static_cast<const float*>(values);
    if (n + 8 <= k) return _mm256_loadu_ps(p + n);
    alignas(32) float tmp[8] = {};
    for (int64_t i = 0; i < k - n; ++i) tmp[i] = p[n + i];
    return _mm256_load_ps(tmp);
  } else {
    return u16x8_to_ps<DT>(load_packed_u16x8(static_cast<const uint16_t*>(values), n, k));
  }
}

// The 8 bitmap bits of columns j..j+8 (j a multiple of 8).
inline uint32_t bitmap8(const uint32_t* bitmap, int64_t j) { return bitmap[j >> 5] >> (j & 31) & 0xffu; }

// The fp32 vector layer cpu/simd_linear.h's kernels are written against.
struct F32Vec {
  using reg = __m256;
  static constexpr int kLanes = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg fma(reg acc, reg a, reg b) { return _mm256_fmadd_ps(a, b, acc); }  // acc + a * b
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg masked(reg v, uint32_t m) { return _mm256_and_ps(v, _mm256_castsi256_ps(lanes_of(m))); }  // lanes outside m zero
  static float sum(reg v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
  template <DType DT>
  static reg load(const void* w, int64_t j) { return load8<DT>(w, j); }
};

// The 32-bit lane layer cpu/simd_select.h's kernels are written against. Keys are below 2^31, so
// the signed compares order them.
struct U32Vec {
  using reg = __m256i;
  static constexpr int kLanes = 8;
  static reg load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(uint32_t* p, reg v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static reg dup(uint32_t x) { return _mm256_set1_epi32(int32_t(x)); }
  static uint32_t gt(reg a, reg b) { return bits_of(_mm256_cmpgt_epi32(a, b)); }
  static uint32_t eq(reg a, reg b) { return bits_of(_mm256_cmpeq_epi32(a, b)); }
  // at_least(v, bound(x)): the lanes with v >= x, for 0 <= x <= 2^31 (v > x - 1, signed).
  static reg bound(uint32_t x) { return dup(x - 1u); }
  static uint32_t at_least(reg v, reg b) { return gt(v, b); }
  static reg compress(reg v, uint32_t m) {
    return _mm256_permutevar8x32_epi32(v, nibble_indices(kMaskTables.compress[m]));
  }
  static reg expand(reg v, uint32_t m) {  // lanes outside m zero
    return _mm256_and_si256(_mm256_permutevar8x32_epi32(v, nibble_indices(kMaskTables.expand[m])), lanes_of(m));
  }
  static reg keep(reg v, uint32_t m) { return _mm256_and_si256(v, lanes_of(m)); }
  static reg key_bits(__m256 s) { return _mm256_and_si256(_mm256_castps_si256(s), _mm256_set1_epi32(0x7fffffff)); }
  static reg widen_u16(const uint16_t* p) { return widen8_u16(load_u16x8(p)); }
  static void store_narrow_u16(uint16_t* p, reg v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow8_u16(v)); }
  static void store_mask_bytes(uint8_t* p, uint32_t m) { std::memcpy(p, &kMaskTables.bytes[m], 8); }
  static uint32_t mask_bits(const uint8_t* p) {  // the lanes whose mask byte is nonzero
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return ~uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_setzero_si128()))) & 0xffu;
  }
  static void keep_u16x2(const uint16_t* src, uint16_t* dst, uint32_t m) {  // 16 values, those outside m zero
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_and_si256(v, lanes16_of(m)));
  }
};

}  // namespace
}  // namespace mumoe::cpu::avx2
