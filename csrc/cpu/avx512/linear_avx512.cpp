// AVX-512 norm, masking and small-T product kernels. The compact format is read with vpexpandd
// (register form) driven by the bitmap word, and popcount offsets into the packed values.
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/avx512/simd_avx512.h"

namespace mumoe::cpu::avx512 {

namespace {

// kSquare: out[j] += sum of (x - center[j])^2 (center null: 0); else out[j] += sum of x.
template <DType DT, bool kSquare>
void moments_of(const void* x, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                const float* center, float* out) {
  const int64_t es = dtype_size(DT);
  for (int64_t j0 = 0; j0 < d; j0 += 64) {
    const __mmask16 m[4] = {lanes(d - j0), lanes(d - j0 - 16), lanes(d - j0 - 32), lanes(d - j0 - 48)};
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    if (center)
      for (int u = 0; u < 4; ++u) c[u] = _mm512_maskz_loadu_ps(m[u], center + j0 + 16 * u);
    for (int64_t t = 0; t < T; ++t) {
      if (keep && !keep[t]) continue;
      const void* row = static_cast<const char*>(x) + es * ld * t;
      for (int u = 0; u < 4; ++u) {
        const __m512 v = load16<DT>(row, j0 + 16 * u, m[u]);
        if constexpr (kSquare) {
          const __m512 dv = _mm512_sub_ps(v, c[u]);
          acc[u] = _mm512_fmadd_ps(dv, dv, acc[u]);
        } else {
          acc[u] = _mm512_add_ps(acc[u], v);
        }
      }
    }
    for (int u = 0; u < 4; ++u) {
      float* o = out + j0 + 16 * u;
      const __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m[u], o), acc[u]);
      if (m[u] == 0xffff) _mm512_storeu_ps(o, sum);  // masked stores are slow on Zen 4
      else _mm512_mask_storeu_ps(o, m[u], sum);
    }
  }
}

// The kept values of one 16-column chunk with bitmap bits m, starting at values[n], as fp32 lanes.
// Plain loads while 16 values remain in the row (no mask register to build), masked at its end.
template <DType DT>
inline __m512 expand16(const void* values, int64_t n, int64_t k, __mmask16 m) {
  if (n + 16 <= k) {
    if constexpr (DT == DType::f32) return _mm512_maskz_expand_ps(m, _mm512_loadu_ps(static_cast<const float*>(values) + n));
    else return _mm512_maskz_expand_ps(m, widen16<DT>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(values) + n))));
  }
  return _mm512_maskz_expand_ps(m, load16<DT>(values, n, lanes(__builtin_popcount(m))));
}

inline __mmask16 mask16(const uint8_t* mask, int64_t j, __mmask16 valid) {
  const __m128i b = _mm_maskz_loadu_epi8(valid, mask + j);
  return _mm_test_epi8_mask(b, b);
}

// out[t] = sum_j x[t*d + j] * w_j for T token rows, with the weight row given chunk by chunk by
// `weights(j, valid)`; U chunks in flight per token keep enough FMA chains busy.
template <int T, int U, class Weights>
inline void dot_rows(const float* x, int64_t d, float* out, Weights weights) {
  __m512 acc[T][U];
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[t][u] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 * U <= d; j += 16 * U) {
    __m512 w[U];
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) w[u] = weights(j + 16 * u, __mmask16(0xffff));
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      #pragma GCC unroll 8
      for (int u = 0; u < U; ++u)
        acc[t][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + t * d + j + 16 * u), w[u], acc[t][u]);
  }
  for (; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j);
    const __m512 w = weights(j, valid);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      acc[t][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(valid, x + t * d + j), w, acc[t][0]);
  }
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    #pragma GCC unroll 8
    for (int u = 1; u < U; ++u) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][u]);
    out[t] = _mm512_reduce_add_ps(acc[t][0]);
  }
}

template <int T, DType DT>
void masked_dot_of(const float* x, const void* w, const uint8_t* mask, int64_t d, float* out) {
  constexpr int U = T == 1 ? 4 : T <= 4 ? 2 : 1;
  dot_rows<T, U>(x, d, out, [&](int64_t j, __mmask16 valid) {
    return load16<DT>(w, j, mask16(mask, j, valid));
  });
}

template <int T, DType DT>
void sparse_dot_of(const float* x, const uint32_t* bitmap, const void* values, int64_t d, int64_t k,
                   float* out) {
  constexpr int U = T == 1 ? 4 : T <= 4 ? 2 : 1;
  int64_t n = 0;  // values consumed so far; chunks are visited in column order
  dot_rows<T, U>(x, d, out, [&](int64_t j, __mmask16 valid) {
    const __mmask16 m = bitmap16(bitmap, j) & valid;
    const __m512 v = expand16<DT>(values, n, k, m);
    n += __builtin_popcount(m);
    return v;
  });
}

template <DType DT>
void masked_dot_t(const float* x, int64_t T, const void* w, const uint8_t* mask, int64_t d, float* out) {
  switch (T) {
    case 1: return masked_dot_of<1, DT>(x, w, mask, d, out);
    case 2: return masked_dot_of<2, DT>(x, w, mask, d, out);
    case 3: return masked_dot_of<3, DT>(x, w, mask, d, out);
    case 4: return masked_dot_of<4, DT>(x, w, mask, d, out);
    case 5: return masked_dot_of<5, DT>(x, w, mask, d, out);
    case 6: return masked_dot_of<6, DT>(x, w, mask, d, out);
    case 7: return masked_dot_of<7, DT>(x, w, mask, d, out);
    default:
      for (int64_t t0 = 0; t0 < T; t0 += 8)
        masked_dot_of<8, DT>(x + t0 * d, w, mask, d, out + t0);  // T == 8 (callers cap T at 8)
  }
}

template <DType DT>
void sparse_dot_t(const float* x, int64_t T, const uint32_t* bitmap, const void* values, int64_t d,
                  int64_t k, float* out) {
  switch (T) {
    case 1: return sparse_dot_of<1, DT>(x, bitmap, values, d, k, out);
    case 2: return sparse_dot_of<2, DT>(x, bitmap, values, d, k, out);
    case 3: return sparse_dot_of<3, DT>(x, bitmap, values, d, k, out);
    case 4: return sparse_dot_of<4, DT>(x, bitmap, values, d, k, out);
    case 5: return sparse_dot_of<5, DT>(x, bitmap, values, d, k, out);
    case 6: return sparse_dot_of<6, DT>(x, bitmap, values, d, k, out);
    case 7: return sparse_dot_of<7, DT>(x, bitmap, values, d, k, out);
    default:
      for (int64_t t0 = 0; t0 < T; t0 += 8)
        sparse_dot_of<8, DT>(x + t0 * d, bitmap, values, d, k, out + t0);
  }
}

}  // namespace

void col_sumsq(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
               const float* center, float* out) {
  switch (dt) {
    case DType::f32: return moments_of<DType::f32, true>(x, T, d, ld, keep, center, out);
    case DType::f16: return moments_of<DType::f16, true>(x, T, d, ld, keep, center, out);
    default: return moments_of<DType::bf16, true>(x, T, d, ld, keep, center, out);
  }
}

void col_sum(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
             float* out) {
  switch (dt) {
    case DType::f32: return moments_of<DType::f32, false>(x, T, d, ld, keep, nullptr, out);
    case DType::f16: return moments_of<DType::f16, false>(x, T, d, ld, keep, nullptr, out);
    default: return moments_of<DType::bf16, false>(x, T, d, ld, keep, nullptr, out);
  }
}

namespace {
template <DType DT>
void add_cols_of(void* y, int64_t T, int64_t n, int64_t ld, const float* add) {
  for (int64_t t = 0; t < T; ++t) {
    if constexpr (DT == DType::f32) {
      float* row = static_cast<float*>(y) + ld * t;
      for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, row + i), _mm512_maskz_loadu_ps(m, add + i));
        if (m == 0xffff) _mm512_storeu_ps(row + i, s);
        else _mm512_mask_storeu_ps(row + i, m, s);
      }
    } else {
      uint16_t* row = static_cast<uint16_t*>(y) + ld * t;
      for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes(n - i);
        const __m256i s = narrow16<DT>(_mm512_add_ps(load16<DT>(row, i, m), _mm512_maskz_loadu_ps(m, add + i)));
        if (m == 0xffff) _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + i), s);
        else _mm256_mask_storeu_epi16(row + i, m, s);
      }
    }
  }
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
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 valid = lanes(d - j);
      const __m512 v = _mm512_maskz_loadu_ps(mask16(mask, j, valid), src + j);
      if (valid == 0xffff) _mm512_storeu_ps(dst + j, v);
      else _mm512_mask_storeu_ps(dst + j, valid, v);
    }
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask32 valid = d - j >= 32 ? ~__mmask32(0) : (__mmask32(1) << (d - j)) - 1;
    const __m256i b = _mm256_maskz_loadu_epi8(valid, mask + j);
    const __mmask32 m = _mm256_test_epi8_mask(b, b);
    const __m512i v = _mm512_maskz_loadu_epi16(m, src + j);
    if (valid == ~__mmask32(0)) _mm512_storeu_si512(dst + j, v);
    else _mm512_mask_storeu_epi16(dst + j, valid, v);
  }
}

void expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,
                    void* out) {
  int64_t n = 0;
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j), m = bitmap16(bitmap, j) & valid;
    const __mmask16 got = lanes(__builtin_popcount(m));
    if (dt == DType::f32) {
      const __m512 v = _mm512_maskz_loadu_ps(got, static_cast<const float*>(values) + n);
      float* dst = static_cast<float*>(out) + j;
      if (valid == 0xffff) _mm512_storeu_ps(dst, _mm512_maskz_expand_ps(m, v));
      else _mm512_mask_storeu_ps(dst, valid, _mm512_maskz_expand_ps(m, v));
    } else {
      const __m256i h = _mm256_maskz_loadu_epi16(got, static_cast<const uint16_t*>(values) + n);
      const __m512i e = _mm512_maskz_expand_epi32(m, _mm512_cvtepu16_epi32(h));
      uint16_t* dst = static_cast<uint16_t*>(out) + j;
      if (valid == 0xffff) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(e));
      else _mm256_mask_storeu_epi16(dst, valid, _mm512_cvtepi32_epi16(e));
    }
    n += __builtin_popcount(m);
  }
}

void masked_dot(const float* x, int64_t T, const void* w, DType dt, const uint8_t* mask,
                int64_t d, float* out) {
  switch (dt) {
    case DType::f32: return masked_dot_t<DType::f32>(x, T, w, mask, d, out);
    case DType::f16: return masked_dot_t<DType::f16>(x, T, w, mask, d, out);
    default: return masked_dot_t<DType::bf16>(x, T, w, mask, d, out);
  }
}

void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt,
                int64_t d, int64_t k, float* out) {
  switch (dt) {
    case DType::f32: return sparse_dot_t<DType::f32>(x, T, bitmap, values, d, k, out);
    case DType::f16: return sparse_dot_t<DType::f16>(x, T, bitmap, values, d, k, out);
    default: return sparse_dot_t<DType::bf16>(x, T, bitmap, values, d, k, out);
  }
}

}  // namespace mumoe::cpu::avx512
