// AArch64 Advanced SIMD building blocks shared by this folder's kernels (internal linkage).
// Full 4-lane chunks are vectorised; row tails go scalar. fp16 converts with vcvt, bf16 by shifts.
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "cpu/scalar_helpers.h"

namespace mumoe::cpu::neon {
namespace {

// Byte shuffles for vqtbl1q_u8 indexed by a 4-bit lane mask: move the set 32-bit lanes to the
// front (compress) or the first popcount lanes to the set positions (expand). Index 0xff yields
// zero, so unused lanes come out cleared.
struct MaskTables {
  uint8_t compress[16][16];
  uint8_t expand[16][16];
  uint32_t bytes[16];  // the four 0/1 bytes of the mask
};

constexpr MaskTables make_mask_tables() {
  MaskTables t{};
  for (uint32_t m = 0; m < 16; ++m) {
    for (int i = 0; i < 16; ++i) t.compress[m][i] = t.expand[m][i] = 0xff;
    uint32_t n = 0, b = 0;
    for (uint32_t i = 0; i < 4; ++i) {
      if (!(m >> i & 1u)) continue;
      for (uint32_t byte = 0; byte < 4; ++byte) {
        t.compress[m][4 * n + byte] = uint8_t(4 * i + byte);
        t.expand[m][4 * i + byte] = uint8_t(4 * n + byte);
      }
      b |= 1u << (8 * i);
      ++n;
    }
    t.bytes[m] = b;
  }
  return t;
}

constexpr MaskTables kMaskTables = make_mask_tables();

inline uint32x4_t shuffle32(uint32x4_t v, const uint8_t* table) {
  return vreinterpretq_u32_u8(vqtbl1q_u8(vreinterpretq_u8_u32(v), vld1q_u8(table)));
}

inline uint32_t bits_of(uint32x4_t lanes) {
  const uint32_t weights[4] = {1, 2, 4, 8};
  return vaddvq_u32(vandq_u32(lanes, vld1q_u32(weights)));
}

inline uint32x4_t lanes_of(uint32_t m) {
  const uint32_t weights[4] = {1, 2, 4, 8};
  return vtstq_u32(vdupq_n_u32(m), vld1q_u32(weights));
}

inline uint16x8_t lanes16_of(uint32_t m) {
  const uint16_t weights[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  return vtstq_u16(vdupq_n_u16(uint16_t(m)), vld1q_u16(weights));
}

template <DType DT>
inline float32x4_t u16x4_to_ps(uint16x4_t h) {
  if constexpr (DT == DType::f16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
  else return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

// Four weights w[j..j+4) as fp32.
template <DType DT>
inline float32x4_t load4(const void* w, int64_t j) {
  if constexpr (DT == DType::f32) return vld1q_f32(static_cast<const float*>(w) + j);
  else return u16x4_to_ps<DT>(vld1_u16(static_cast<const uint16_t*>(w) + j));
}

// Four packed 16-bit values starting at p[n], never reading past p[k).
inline uint16x4_t load_packed_u16x4(const uint16_t* p, int64_t n, int64_t k) {
  if (n + 4 <= k) return vld1_u16(p + n);
  uint16_t tmp[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < k - n; ++i) tmp[i] = p[n + i];
  return vld1_u16(tmp);
}

// Four packed values starting at values[n] as raw 32-bit lanes, never reading past values[k).
inline uint32x4_t load_packed_f32x4(const float* p, int64_t n, int64_t k) {
  if (n + 4 <= k) return vreinterpretq_u32_f32(vld1q_f32(p + n));
  float tmp[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < k - n; ++i) tmp[i] = p[n + i];
  return vreinterpretq_u32_f32(vld1q_f32(tmp));
}

// The 4 bitmap bits of columns j..j+4 (j a multiple of 4).
inline uint32_t bitmap4(const uint32_t* bitmap, int64_t j) { return bitmap[j >> 5] >> (j & 31) & 0xfu; }

// The fp32 vector layer cpu/simd_linear.h's kernels are written against.
struct F32Vec {
  using reg = float32x4_t;
  static constexpr int kLanes = 4;
  static reg zero() { return vdupq_n_f32(0); }
  static reg loadu(const float* p) { return vld1q_f32(p); }
  static void storeu(float* p, reg v) { vst1q_f32(p, v); }
  static reg add(reg a, reg b) { return vaddq_f32(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f32(a, b); }
  static reg fma(reg acc, reg a, reg b) { return vfmaq_f32(acc, a, b); }  // acc + a * b
  static reg mul(reg a, reg b) { return vmulq_f32(a, b); }
  static reg masked(reg v, uint32_t m) {  // lanes outside m zero
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), lanes_of(m)));
  }
  static float sum(reg v) { return vaddvq_f32(v); }
  template <DType DT>
  static reg load(const void* w, int64_t j) { return load4<DT>(w, j); }
};

// The 32-bit lane layer cpu/simd_select.h's kernels are written against.
struct U32Vec {
  using reg = uint32x4_t;
  static constexpr int kLanes = 4;
  static reg load(const uint32_t* p) { return vld1q_u32(p); }
  static void store(uint32_t* p, reg v) { vst1q_u32(p, v); }
  static reg dup(uint32_t x) { return vdupq_n_u32(x); }
  static uint32_t gt(reg a, reg b) { return bits_of(vcgtq_u32(a, b)); }
  static uint32_t eq(reg a, reg b) { return bits_of(vceqq_u32(a, b)); }
  // at_least(v, bound(x)): the lanes with v >= x.
  static reg bound(uint32_t x) { return dup(x); }
  static uint32_t at_least(reg v, reg b) { return bits_of(vcgeq_u32(v, b)); }
  static reg compress(reg v, uint32_t m) { return shuffle32(v, kMaskTables.compress[m]); }
  static reg expand(reg v, uint32_t m) { return shuffle32(v, kMaskTables.expand[m]); }  // lanes outside m zero
  static reg keep(reg v, uint32_t m) { return vandq_u32(v, lanes_of(m)); }
  static reg key_bits(float32x4_t s) { return vandq_u32(vreinterpretq_u32_f32(s), vdupq_n_u32(0x7fffffffu)); }
  static reg widen_u16(const uint16_t* p) { return vmovl_u16(vld1_u16(p)); }
  static void store_narrow_u16(uint16_t* p, reg v) { vst1_u16(p, vmovn_u32(v)); }
  static void store_mask_bytes(uint8_t* p, uint32_t m) { std::memcpy(p, &kMaskTables.bytes[m], 4); }
  static uint32_t mask_bits(const uint8_t* p) {  // the lanes whose mask byte is nonzero
    uint32_t b;
    std::memcpy(&b, p, 4);
    const uint32x4_t w = vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(b)))));
    return bits_of(vtstq_u32(w, w));
  }
  static void keep_u16x2(const uint16_t* src, uint16_t* dst, uint32_t m) {  // 8 values, those outside m zero
    vst1q_u16(dst, vandq_u16(vld1q_u16(src), lanes16_of(m)));
  }
};

}  // namespace
}  // namespace mumoe::cpu::neon
