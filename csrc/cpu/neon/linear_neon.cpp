// NEON norm, masking and small-T product kernels. The compact format is expanded 4 columns at a
// time with a byte shuffle looked up by the bitmap nibble, at popcount offsets into the values.
#include "cpu/neon/simd_neon.h"

namespace mumoe::cpu::neon {
namespace {

// kSquare: out[j] += sum of (x - center[j])^2 (center null: 0); else out[j] += sum of x.
template <DType DT, bool kSquare>
void moments_of(const void* x, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
                const float* center, float* out) {
  const int64_t es = dtype_size(DT);
  int64_t j0 = 0;
  for (; j0 + 16 <= d; j0 += 16) {
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    float32x4_t c[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    if (center)
      for (int u = 0; u < 4; ++u) c[u] = vld1q_f32(center + j0 + 4 * u);
    for (int64_t t = 0; t < T; ++t) {
      if (keep && !keep[t]) continue;
      const void* row = static_cast<const char*>(x) + es * ld * t;
      for (int u = 0; u < 4; ++u) {
        const float32x4_t v = load4<DT>(row, j0 + 4 * u);
        if constexpr (kSquare) {
          const float32x4_t dv = vsubq_f32(v, c[u]);
          acc[u] = vfmaq_f32(acc[u], dv, dv);
        } else {
          acc[u] = vaddq_f32(acc[u], v);
        }
      }
    }
    for (int u = 0; u < 4; ++u) vst1q_f32(out + j0 + 4 * u, vaddq_f32(vld1q_f32(out + j0 + 4 * u), acc[u]));
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

// out[t] = sum_j x[t*d + j] * w_j for T token rows. `weights.chunk(j)` gives w[j..j+4) and
// `weights.one(j)` a tail column, both called in column order; U chunks in flight per token.
template <int T, int U, class Weights>
inline void dot_rows(const float* x, int64_t d, float* out, Weights& weights) {
  float32x4_t acc[T][U];
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[t][u] = vdupq_n_f32(0);
  int64_t j = 0;
  for (; j + 4 * U <= d; j += 4 * U) {
    float32x4_t w[U];
    #pragma GCC unroll 8
    for (int u = 0; u < U; ++u) w[u] = weights.chunk(j + 4 * u);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      #pragma GCC unroll 8
      for (int u = 0; u < U; ++u) acc[t][u] = vfmaq_f32(acc[t][u], vld1q_f32(x + t * d + j + 4 * u), w[u]);
  }
  for (; j + 4 <= d; j += 4) {
    const float32x4_t w = weights.chunk(j);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[t][0] = vfmaq_f32(acc[t][0], vld1q_f32(x + t * d + j), w);
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
    for (int u = 1; u < U; ++u) acc[t][0] = vaddq_f32(acc[t][0], acc[t][u]);
    out[t] = vaddvq_f32(acc[t][0]) + tail[t];
  }
}

// Four mask bytes as all-ones 32-bit lanes where nonzero.
inline uint32x4_t mask4(const uint8_t* mask) {
  uint32_t b;
  std::memcpy(&b, mask, 4);
  const uint16x4_t h = vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(b))));
  const uint32x4_t w = vmovl_u16(h);
  return vtstq_u32(w, w);
}

template <DType DT>
struct MaskedWeights {
  const void* w;
  const uint8_t* mask;
  inline float32x4_t chunk(int64_t j) {
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(load4<DT>(w, j)), mask4(mask + j)));
  }
  inline float one(int64_t j) { return mask[j] ? load_as_float(w, DT, j) : 0.0f; }
};

template <DType DT>
struct CompactWeights {
  const uint32_t* bitmap;
  const void* values;
  int64_t k, n;  // n: values consumed so far
  inline float32x4_t chunk(int64_t j) {
    const uint32_t m = bitmap4(bitmap, j);
    uint32x4_t raw;
    if constexpr (DT == DType::f32) {
      raw = load_packed_f32x4(static_cast<const float*>(values), n, k);
    } else {
      raw = vreinterpretq_u32_f32(u16x4_to_ps<DT>(load_packed_u16x4(static_cast<const uint16_t*>(values), n, k)));
    }
    n += __builtin_popcount(m);
    return vreinterpretq_f32_u32(shuffle32(raw, kMaskTables.expand[m]));
  }
  inline float one(int64_t j) {
    return bitmap[j >> 5] >> (j & 31) & 1u ? load_as_float(values, DT, n++) : 0.0f;
  }
};

template <int T, class Weights>
void dot_t(const float* x, int64_t d, float* out, Weights& w) {
  constexpr int U = T == 1 ? 4 : T <= 4 ? 2 : 1;
  dot_rows<T, U>(x, d, out, w);
}

template <class Weights>
void dot_any_t(const float* x, int64_t T, int64_t d, float* out, Weights w) {
  switch (T) {
    case 1: return dot_t<1>(x, d, out, w);
    case 2: return dot_t<2>(x, d, out, w);
    case 3: return dot_t<3>(x, d, out, w);
    case 4: return dot_t<4>(x, d, out, w);
    case 5: return dot_t<5>(x, d, out, w);
    case 6: return dot_t<6>(x, d, out, w);
    case 7: return dot_t<7>(x, d, out, w);
    default:  // callers cap T at 8; restart the weights for every group of 8 tokens
      for (int64_t t0 = 0; t0 < T; t0 += 8) {
        Weights fresh = w;
        dot_t<8>(x + t0 * d, d, out + t0, fresh);
      }
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

// Scalar: a few rows of a block's output per call, next to its GEMM (no NEON form yet).
void add_cols(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add) {
  add_cols_from(y, dt, T, n, ld, add, 0);
}

void apply_mask(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out) {
  int64_t j = 0;
  if (dt == DType::f32) {
    const uint32_t* src = static_cast<const uint32_t*>(w);
    uint32_t* dst = static_cast<uint32_t*>(out);
    for (; j + 4 <= d; j += 4) vst1q_u32(dst + j, vandq_u32(vld1q_u32(src + j), mask4(mask + j)));
    for (; j < d; ++j) dst[j] = mask[j] ? src[j] : 0u;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 8 <= d; j += 8) {
    const uint16x8_t m = vmovl_u8(vld1_u8(mask + j));
    vst1q_u16(dst + j, vandq_u16(vld1q_u16(src + j), vtstq_u16(m, m)));
  }
  for (; j < d; ++j) dst[j] = mask[j] ? src[j] : uint16_t(0);
}

void expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,
                    void* out) {
  int64_t n = 0, j = 0;
  for (; j + 4 <= d; j += 4) {
    const uint32_t m = bitmap4(bitmap, j);
    const uint8_t* idx = kMaskTables.expand[m];
    if (dt == DType::f32) {
      vst1q_u32(static_cast<uint32_t*>(out) + j, shuffle32(load_packed_f32x4(static_cast<const float*>(values), n, k), idx));
    } else {
      const uint32x4_t wide = vmovl_u16(load_packed_u16x4(static_cast<const uint16_t*>(values), n, k));
      vst1_u16(static_cast<uint16_t*>(out) + j, vmovn_u32(shuffle32(wide, idx)));
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
  switch (dt) {
    case DType::f32: return dot_any_t(x, T, d, out, MaskedWeights<DType::f32>{w, mask});
    case DType::f16: return dot_any_t(x, T, d, out, MaskedWeights<DType::f16>{w, mask});
    default: return dot_any_t(x, T, d, out, MaskedWeights<DType::bf16>{w, mask});
  }
}

void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt,
                int64_t d, int64_t k, float* out) {
  switch (dt) {
    case DType::f32: return dot_any_t(x, T, d, out, CompactWeights<DType::f32>{bitmap, values, k, 0});
    case DType::f16: return dot_any_t(x, T, d, out, CompactWeights<DType::f16>{bitmap, values, k, 0});
    default: return dot_any_t(x, T, d, out, CompactWeights<DType::bf16>{bitmap, values, k, 0});
  }
}

}  // namespace mumoe::cpu::neon
