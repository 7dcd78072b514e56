// NEON selection kernels: scores, sampled-bracket radix threshold, and the three row outputs.
#include "cpu/neon/simd_neon.h"

namespace mumoe::cpu::neon {
namespace {

// Keep decisions in column order: 4 keys at a time, and one at a time for row tails.
struct Keeper {
  uint32x4_t tau;
  KeepCursor cursor;
  Keeper(RowThreshold th) : tau(vdupq_n_u32(th.tau)), cursor{th.tau, th.ties_kept} {}
  inline uint32_t next4(const uint32_t* keys) {
    const uint32x4_t v = vld1q_u32(keys);
    const uint32_t gt = bits_of(vcgtq_u32(v, tau)), eq = bits_of(vceqq_u32(v, tau));
    return eq ? uint32_t(take_ties(gt, eq, cursor.ties_left)) : gt;
  }
  inline bool next1(uint32_t key) { return cursor.next(key); }
};

template <DType DT>
void scores_of(const void* w, const float* norms, int64_t d, uint32_t* keys) {
  const uint32x4_t abs_bits = vdupq_n_u32(0x7fffffffu);
  int64_t j = 0;
  for (; j + 4 <= d; j += 4) {
    // One rounding, like the reference; the AND clears the sign of a NaN.
    const float32x4_t s = vmulq_f32(vabsq_f32(load4<DT>(w, j)), vabsq_f32(vld1q_f32(norms + j)));
    vst1q_u32(keys + j, vandq_u32(vreinterpretq_u32_f32(s), abs_bits));
  }
  for (; j < d; ++j) keys[j] = score_key(load_as_float(w, DT, j), norms[j]);
}

// One pass: *above = #keys in bins above r.hi; keys of bins r.lo..r.hi packed into scratch
// (which has spare entries past d for the full-width stores).
int64_t bracket_pass(const uint32_t* keys, int64_t d, BinBracket r, uint32_t* scratch, int64_t* above) {
  const uint32_t lo = r.lo << kTopShift, hi = (r.hi + 1) << kTopShift;
  const uint32x4_t vlo = vdupq_n_u32(lo), vhi = vdupq_n_u32(hi);
  int64_t n = 0, gt = 0, j = 0;
  for (; j + 4 <= d; j += 4) {
    const uint32x4_t v = vld1q_u32(keys + j);
    const uint32x4_t up = vcgeq_u32(v, vhi);
    const uint32_t in = bits_of(vbicq_u32(vcgeq_u32(v, vlo), up));
    vst1q_u32(scratch + n, shuffle32(v, kMaskTables.compress[in]));
    n += __builtin_popcount(in);
    gt += __builtin_popcount(bits_of(up));
  }
  for (; j < d; ++j) {
    gt += keys[j] >= hi;
    if (keys[j] >= lo && keys[j] < hi) scratch[n++] = keys[j];
  }
  *above = gt;
  return n;
}

}  // namespace

void row_scores(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys) {
  switch (dt) {
    case DType::f32: return scores_of<DType::f32>(w, norms, d, keys);
    case DType::f16: return scores_of<DType::f16>(w, norms, d, keys);
    default: return scores_of<DType::bf16>(w, norms, d, keys);
  }
}

RowThreshold row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) {
  RowThreshold th;
  if (select_bracketed(keys, d, k, hint, scratch, bracket_pass, select_in_range, &th)) return th;
  return radix_select_scalar(keys, d, k, scratch);
}

void emit_mask(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask) {
  Keeper keep(th);
  int64_t j = 0;
  for (; j + 4 <= d; j += 4) std::memcpy(mask + j, &kMaskTables.bytes[keep.next4(keys + j)], 4);
  for (; j < d; ++j) mask[j] = keep.next1(keys[j]);
}

void emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 void* out, bool /*streaming*/) {
  Keeper keep(th);
  int64_t j = 0;
  if (dt == DType::f32) {
    const uint32_t* src = static_cast<const uint32_t*>(w);
    uint32_t* dst = static_cast<uint32_t*>(out);
    for (; j + 4 <= d; j += 4) vst1q_u32(dst + j, vandq_u32(vld1q_u32(src + j), lanes_of(keep.next4(keys + j))));
    for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : 0u;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 8 <= d; j += 8) {
    const uint32_t m = keep.next4(keys + j) | keep.next4(keys + j + 4) << 4;
    vst1q_u16(dst + j, vandq_u16(vld1q_u16(src + j), lanes16_of(m)));
  }
  for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : uint16_t(0);
}

void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values) {
  Keeper keep(th);
  const int64_t words = (d + 31) / 32;
  for (int64_t i = 0; i < words; ++i) bitmap[i] = 0;
  int64_t n = 0, j = 0;
  for (; j + 4 <= d; j += 4) {
    const uint32_t m = keep.next4(keys + j);
    bitmap[j >> 5] |= m << (j & 31);
    const int c = __builtin_popcount(m);
    if (dt == DType::f32) {
      uint32_t* dst = static_cast<uint32_t*>(values) + n;
      const uint32x4_t packed = shuffle32(vld1q_u32(static_cast<const uint32_t*>(w) + j), kMaskTables.compress[m]);
      if (n + 4 <= k) {
        vst1q_u32(dst, packed);
      } else {  // stay inside this row
        uint32_t tmp[4];
        vst1q_u32(tmp, packed);
        for (int i = 0; i < c; ++i) dst[i] = tmp[i];
      }
    } else {
      uint16_t* dst = static_cast<uint16_t*>(values) + n;
      const uint32x4_t wide = vmovl_u16(vld1_u16(static_cast<const uint16_t*>(w) + j));
      const uint16x4_t packed = vmovn_u32(shuffle32(wide, kMaskTables.compress[m]));
      if (n + 4 <= k) {
        vst1_u16(dst, packed);
      } else {
        uint16_t tmp[4];
        vst1_u16(tmp, packed);
        for (int i = 0; i < c; ++i) dst[i] = tmp[i];
      }
    }
    n += c;
  }
  const int64_t es = dtype_size(dt);
  for (; j < d; ++j) {
    if (!keep.next1(keys[j])) continue;
    bitmap[j >> 5] |= 1u << (j & 31);
    std::memcpy(static_cast<char*>(values) + es * n++, static_cast<const char*>(w) + es * j, es);
  }
}

namespace {
template <DType DT>
float pruned_dot_of(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, const float* v) {
  Keeper keep(th);
  float32x4_t acc = vdupq_n_f32(0);
  int64_t j = 0;
  for (; j + 4 <= d; j += 4) {
    const uint32_t drop = ~keep.next4(keys + j) & 0xfu;
    if (!drop) continue;
    const float32x4_t wv = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(load4<DT>(w, j)), lanes_of(drop)));
    acc = vfmaq_f32(acc, wv, vld1q_f32(v + j));
  }
  float sum = vaddvq_f32(acc);
  for (; j < d; ++j)
    if (!keep.next1(keys[j])) sum += load_as_float(w, DT, j) * v[j];
  return sum;
}
}  // namespace

float pruned_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 const float* v) {
  switch (dt) {
    case DType::f32: return pruned_dot_of<DType::f32>(w, keys, d, th, v);
    case DType::f16: return pruned_dot_of<DType::f16>(w, keys, d, th, v);
    default: return pruned_dot_of<DType::bf16>(w, keys, d, th, v);
  }
}

float emit_compact_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values, const float* v) {
  emit_compact(w, dt, keys, d, th, k, bitmap, values);
  return pruned_dot(w, dt, keys, d, th, v);
}

}  // namespace mumoe::cpu::neon
