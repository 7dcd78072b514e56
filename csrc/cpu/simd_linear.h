// The column moments and small-T products of the fixed-width ISAs (AVX2, NEON), written once over
// the folder's fp32 vector layer V (its simd header's F32Vec: reg, kLanes, zero, loadu, storeu,
// add, sub, fma, sum, load<DT>). Each ISA file includes this after its simd header and supplies
// only what differs: how a chunk of weights is formed (Weights::chunk / one). Internal linkage,
// like scalar_helpers.h: every folder compiles its own copy with its own flags.
#pragma once
#include "cpu/scalar_helpers.h"

namespace mumoe::cpu {
namespace {

// kSquare: out[j] += sum of (x - center[j])^2 (center null: 0); else out[j] += sum of x.
// Four vectors of columns at a time; the last d % (4 * kLanes) columns go scalar.
template <class V, DType DT, bool kSquare>
void moments_of(const void* x, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                const float* center, float* out) {
  constexpr int L = V::kLanes;
  const int64_t es = dtype_size(DT);
  int64_t j0 = 0;
  for (; j0 + 4 * L <= d; j0 += 4 * L) {
    typename V::reg acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    typename V::reg c[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    if (center)
      for (int u = 0; u < 4; ++u) c[u] = V::loadu(center + j0 + L * u);
    for (int64_t t = 0; t < T; ++t) {
      if (keep && !keep[t]) continue;
      const void* row = static_cast<const char*>(x) + es * ld * t;
      for (int u = 0; u < 4; ++u) {
        const typename V::reg v = V::template load<DT>(row, j0 + L * u);
        if constexpr (kSquare) {
          const typename V::reg dv = V::sub(v, c[u]);
          acc[u] = V::fma(acc[u], dv, dv);
        } else {
          acc[u] = V::add(acc[u], v);
        }
      }
    }
    for (int u = 0; u < 4; ++u) V::storeu(out + j0 + L * u, V::add(V::loadu(out + j0 + L * u), acc[u]));
  }
  for (int64_t t = 0; t < T && j0 < d; ++t) {
    if (keep && !keep[t]) continue;
    const void* row = static_cast<const char*>(x) + es * ld * t;
    for (int64_t j = j0; j < d; ++j) {
      const float v = load_as_float(row, DT, j) - (kSquare && center ? center[j] : 0.0f);
      out[j] += kSquare ? v * v : v;
    }
  }
}

template <class V, bool kSquare>
void col_moments(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                 const float* center, float* out) {
  switch (dt) {
    case DType::f32: return moments_of<V, DType::f32, kSquare>(x, T, d, ld, keep, center, out);
    case DType::f16: return moments_of<V, DType::f16, kSquare>(x, T, d, ld, keep, center, out);
    default: return moments_of<V, DType::bf16, kSquare>(x, T, d, ld, keep, center, out);
  }
}

// out[t] = sum_j x[t*d + j] * w_j for T token rows. `weights.chunk(j)` gives w[j..j+kLanes) and
// `weights.one(j)` a tail column, both called in column order; U chunks in flight per token.
template <class V, int T, int U, class Weights>
inline void dot_rows(const float* x, int64_t d, float* out, Weights& weights) {
  constexpr int L = V::kLanes;
  typename V::reg acc[T][U];
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[t][u] = V::zero();
  int64_t j = 0;
  for (; j + L * U <= d; j += L * U) {
    typename V::reg w[U];
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) w[u] = weights.chunk(j + L * u);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      #pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[t][u] = V::fma(acc[t][u], V::loadu(x + t * d + j + L * u), w[u]);
  }
  for (; j + L <= d; j += L) {
    const typename V::reg w = weights.chunk(j);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[t][0] = V::fma(acc[t][0], V::loadu(x + t * d + j), w);
  }
  float tail[T] = {};
  for (; j < d; ++j) {
    const float w = weights.one(j);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) tail[t] += x[t * d + j] * w;
  }
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    #pragma GCC unroll 8
    for (int u = 1; u < U; ++u) acc[t][0] = V::add(acc[t][0], acc[t][u]);
    out[t] = V::sum(acc[t][0]) + tail[t];
  }
}

template <class V, int T, class Weights>
void dot_t(const float* x, int64_t d, float* out, Weights& w) {
  constexpr int U = T == 1 ? 4 : T <= 4 ? 2 : 1;
  dot_rows<V, T, U>(x, d, out, w);
}

// The products of T <= kSmallT token rows (larger T in groups of 8, the weights restarted for each).
template <class V, class Weights>
void dot_any_t(const float* x, int64_t T, int64_t d, float* out, Weights w) {
  switch (T) {
    case 1: return dot_t<V, 1>(x, d, out, w);
    case 2: return dot_t<V, 2>(x, d, out, w);
    case 3: return dot_t<V, 3>(x, d, out, w);
    case 4: return dot_t<V, 4>(x, d, out, w);
    case 5: return dot_t<V, 5>(x, d, out, w);
    case 6: return dot_t<V, 6>(x, d, out, w);
    case 7: return dot_t<V, 7>(x, d, out, w);
    default:
      for (int64_t t0 = 0; t0 < T; t0 += 8) {
        Weights fresh = w;
        dot_t<V, 8>(x + t0 * d, d, out + t0, fresh);
      }
  }
}

// dot_any_t with the ISA's Weights<DT> for the runtime dtype, built from `args`.
template <class V, template <DType> class Weights, class... Args>
void dot_by_dtype(DType dt, const float* x, int64_t T, int64_t d, float* out, Args... args) {
  switch (dt) {
    case DType::f32: return dot_any_t<V>(x, T, d, out, Weights<DType::f32>{args...});
    case DType::f16: return dot_any_t<V>(x, T, d, out, Weights<DType::f16>{args...});
    default: return dot_any_t<V>(x, T, d, out, Weights<DType::bf16>{args...});
  }
}

}  // namespace
}  // namespace mumoe::cpu

// The column-moment and small-T product entry points of kernel_decls.h for the enclosing ISA
// namespace: its F32Vec, and its chunk types for a byte mask and for the compact format.
#define MUMOE_DEFINE_LANE_LINEAR_KERNELS(F, MaskedWeights, CompactWeights)                          \
  void col_sumsq(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,  \
                 const float* center, float* out) {                                               \
    col_moments<F, true>(x, dt, T, d, ld, keep, center, out);                                      \
  }                                                                                                \
  void col_sum(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,    \
               float* out) {                                                                       \
    col_moments<F, false>(x, dt, T, d, ld, keep, nullptr, out);                                    \
  }                                                                                                \
  void masked_dot(const float* x, int64_t T, const void* w, DType dt, const uint8_t* mask,        \
                  int64_t d, float* out) {                                                         \
    dot_by_dtype<F, MaskedWeights>(dt, x, T, d, out, w, mask);                                     \
  }                                                                                                \
  void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt, \
                  int64_t d, int64_t k, float* out) {                                              \
    dot_by_dtype<F, CompactWeights>(dt, x, T, d, out, bitmap, values, k, int64_t(0));              \
  }
