// AVX2 masking and the compact format's chunks for the column moments and small-T products of
// cpu/simd_linear.h: 8 columns at a time, expanded with a permutation looked up by the bitmap byte,
// at popcount offsets into the values.
#include "cpu/avx2/simd_avx2.h"
#include "cpu/simd_linear.h"

namespace mumoe::cpu::avx2 {
namespace {

// 8 mask bytes as all-ones 32-bit lanes where nonzero.
inline __m256 mask8(const uint8_t* mask) {
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask)));
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, _mm256_setzero_si256()));
}

template <DType DT>
struct MaskedWeights {
  const void* w;
  const uint8_t* mask;
  inline __m256 chunk(int64_t j) { return _mm256_and_ps(load8<DT>(w, j), mask8(mask + j)); }
  inline float one(int64_t j) { return mask[j] ? load_as_float(w, DT, j) : 0.0f; }
};

template <DType DT>
struct CompactWeights {
  const uint32_t* bitmap;
  const void* values;
  int64_t k, n;  // n: values consumed so far
  inline __m256 chunk(int64_t j) {
    const uint32_t m = bitmap8(bitmap, j);
    const __m256 v = _mm256_permutevar8x32_ps(load_packed8<DT>(values, n, k),
                                              nibble_indices(kMaskTables.expand[m]));
    n += __builtin_popcount(m);
    return _mm256_and_ps(v, _mm256_castsi256_ps(lanes_of(m)));
  }
  inline float one(int64_t j) {
    return bitmap[j >> 5] >> (j & 31) & 1u ? load_as_float(values, DT, n++) : 0.0f;
  }
};

}  // namespace

void col_sumsq(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
               const float* center, float* out) {
  col_moments<F32Vec, true>(x, dt, T, d, ld, keep, center, out);
}

void col_sum(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
             float* out) {
  col_moments<F32Vec, false>(x, dt, T, d, ld, keep, nullptr, out);
}

namespace {
// Eight fp32 lanes rounded to nearest even into 16-bit floats (bf16 with the scalar rounding
// applied to the whole register).
template <DType DT>
inline __m128i narrow8(__m256 v) {
  if constexpr (DT == DType::f16) {
    return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    using u32x8 = uint32_t __attribute__((vector_size(32)));
    return narrow8_u16(__m256i(bf16_bits(u32x8(_mm256_castps_si256(v)))));
  }
}

template <DType DT>
void add_cols_of(void* y, int64_t T, int64_t n, int64_t ld, const float* add) {
  const int64_t full = n / 8 * 8;
  for (int64_t t = 0; t < T; ++t) {
    if constexpr (DT == DType::f32) {
      float* row = static_cast<float*>(y) + ld * t;
      for (int64_t i = 0; i < full; i += 8)
        _mm256_storeu_ps(row + i, _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(add + i)));
    } else {
      uint16_t* row = static_cast<uint16_t*>(y) + ld * t;
      for (int64_t i = 0; i < full; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(row + i),
                         narrow8<DT>(_mm256_add_ps(load8<DT>(row, i), _mm256_loadu_ps(add + i))));
    }
  }
  if (full < n) add_cols_from(y, DT, T, n, ld, add, full);
}
}  // namespace

void add_cols(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add) {
  switch (dt) {
    case DType::f32: return add_cols_of<DType::f32>(y, T, n, ld, add);
    case DType::f16: return add_cols_of<DType::f16>(y, T, n, ld, add);
    default: return add_cols_of<DType::bf16>(y, T, n, ld, add);
  }
}

void apply_mask(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out) {
  int64_t j = 0;
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (; j + 8 <= d; j += 8) _mm256_storeu_ps(dst + j, _mm256_and_ps(_mm256_loadu_ps(src + j), mask8(mask + j)));
    for (; j < d; ++j) dst[j] = mask[j] ? src[j] : 0.0f;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 16 <= d; j += 16) {
    const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mask + j)));
    const __m256i m = _mm256_cmpgt_epi16(b, _mm256_setzero_si256());
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_and_si256(v, m));
  }
  for (; j < d; ++j) dst[j] = mask[j] ? src[j] : uint16_t(0);
}

void expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,
                    void* out) {
  int64_t n = 0, j = 0;
  for (; j + 8 <= d; j += 8) {
    const uint32_t m = bitmap8(bitmap, j);
    const __m256i idx = nibble_indices(kMaskTables.expand[m]), keep = lanes_of(m);
    if (dt == DType::f32) {
      const __m256 v = _mm256_permutevar8x32_ps(load_packed8<DType::f32>(values, n, k), idx);
      _mm256_storeu_ps(static_cast<float*>(out) + j, _mm256_and_ps(v, _mm256_castsi256_ps(keep)));
    } else {
      const __m256i wide = widen8_u16(load_packed_u16x8(static_cast<const uint16_t*>(values), n, k));
      const __m256i v = _mm256_and_si256(_mm256_permutevar8x32_epi32(wide, idx), keep);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + j), narrow8_u16(v));
    }
    n += __builtin_popcount(m);
  }
  const int64_t es = dtype_size(dt);
  for (; j < d; ++j) {
    char* dst = static_cast<char*>(out) + es * j;
    if (bitmap[j >> 5] >> (j & 31) & 1u) std::memcpy(dst, static_cast<const char*>(values) + es * n++, es);
    else std::memset(dst, 0, es);
  }
}

void masked_dot(const float* x, int64_t T, const void* w, DType dt, const uint8_t* mask,
                int64_t d, float* out) {
  dot_by_dtype<F32Vec, MaskedWeights>(dt, x, T, d, out, w, mask);
}

void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt,
                int64_t d, int64_t k, float* out) {
  dot_by_dtype<F32Vec, CompactWeights>(dt, x, T, d, out, bitmap, values, k, int64_t(0));
}

}  // namespace mumoe::cpu::avx2
