// NEON masking and the compact format's chunks for the column moments and small-T products of
// cpu/simd_linear.h: 4 columns at a time, expanded with a byte shuffle looked up by the bitmap
// nibble, at popcount offsets into the values.
#include "cpu/neon/simd_neon.h"
#include "cpu/simd_linear.h"

namespace mumoe::cpu::neon {
namespace {

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

}  // namespace

void col_sumsq(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
               const float* center, float* out) {
  col_moments<F32Vec, true>(x, dt, T, d, ld, keep, center, out);
}

void col_sum(const void* x, DType dt, int64_t T, int64_t d, int64_t ld, const uint8_t* keep,
             float* out) {
  col_moments<F32Vec, false>(x, dt, T, d, ld, keep, nullptr, out);
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
  dot_by_dtype<F32Vec, MaskedWeights>(dt, x, T, d, out, w, mask);
}

void sparse_dot(const float* x, int64_t T, const uint32_t* bitmap, const void* values, DType dt,
                int64_t d, int64_t k, float* out) {
  dot_by_dtype<F32Vec, CompactWeights>(dt, x, T, d, out, bitmap, values, k, int64_t(0));
}

}  // namespace mumoe::cpu::neon
