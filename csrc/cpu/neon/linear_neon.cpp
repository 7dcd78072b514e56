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
    return vreinterpretq_f32_u32(U32Vec::expand(raw, m));
  }
  inline float one(int64_t j) {
    return bitmap[j >> 5] >> (j & 31) & 1u ? load_as_float(values, DT, n++) : 0.0f;
  }
};

}  // namespace

// Scalar: a few rows of a block's output per call, next to its GEMM (no NEON form yet).
void add_cols(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add) {
  add_cols_from(y, dt, T, n, ld, add, 0);
}

MUMOE_DEFINE_LANE_LINEAR_KERNELS(F32Vec, MaskedWeights, CompactWeights)

}  // namespace mumoe::cpu::neon
