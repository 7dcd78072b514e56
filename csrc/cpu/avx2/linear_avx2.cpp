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
    const __m256i v = U32Vec::expand(_mm256_castps_si256(load_packed8<DT>(values, n, k)), m);
    n += __builtin_popcount(m);
    return _mm256_castsi256_ps(v);
  }
  inline float one(int64_t j) {
    return bitmap[j >> 5] >> (j & 31) & 1u ? load_as_float(values, DT, n++) : 0.0f;
  }
};

}  // namespace

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

MUMOE_DEFINE_LANE_LINEAR_KERNELS(F32Vec, MaskedWeights, CompactWeights)

}  // namespace mumoe::cpu::avx2
