// Scalar building blocks shared by every instruction set's kernels (tails, tie handling, radix
// select). Internal linkage on purpose: each ISA folder compiles its own copy with its own flags.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/kernels.h"

namespace mumoe::cpu {
namespace {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    // subnormal: normalise
    int e = -1;
    do { man <<= 1; ++e; } while (!(man & 0x400u));
    return bits_to_float(sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13);
  }
  return bits_to_float(sign | (exp + 112) << 23 | man << 13);
}

inline float load_as_float(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  }
}

inline int64_t dtype_size(DType dt) { return dt == DType::f32 ? 4 : 2; }

// Score key of one weight: bits of |w| * |n| with the sign bit cleared, so -0.0 and the negative
// default NaN of inf*0 order like their absolute values.
inline uint32_t score_key(float w, float n) {
  float s = (w < 0 ? -w : w) * (n < 0 ? -n : n);
  return float_to_bits(s) & 0x7fffffffu;
}

// Keep decision in column order: keys above tau always, keys equal to tau while ties remain.
struct KeepCursor {
  uint32_t tau;
  int64_t ties_left;
  inline bool next(uint32_t key) {
    if (key > tau) return true;
    if (key == tau && ties_left > 0) { --ties_left; return true; }
    return false;
  }
};

// Exact k-th largest of non-negative fp32 keys by three radix passes (11, 11, 10 bits) over a
// shrinking candidate set. No sort; every row costs one full pass plus passes over few candidates.
inline RowThreshold radix_select_scalar(const uint32_t* keys, int64_t d, int64_t k,
                                        uint32_t* scratch) {
  static const int kShift[3] = {21, 10, 0};
  static const uint32_t kBins[3] = {2048, 2048, 1024};
  uint32_t hist[2048];
  const uint32_t* cur = keys;
  int64_t n = d, want = k;
  uint32_t prefix = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const int sh = kShift[pass];
    const uint32_t nb = kBins[pass];
    std::memset(hist, 0, sizeof(uint32_t) * nb);
    for (int64_t i = 0; i < n; ++i) hist[(cur[i] >> sh) & (nb - 1)]++;
    int64_t above = 0;
    uint32_t b = nb - 1;
    for (;; --b) {
      if (above + hist[b] >= want) break;
      above += hist[b];
    }
    want -= above;
    prefix |= b << sh;
    if (pass == 2) break;
    // keep only the candidates in bin b for the next digit
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i)
      if (((cur[i] >> sh) & (nb - 1)) == b) scratch[m++] = cur[i];
    cur = scratch;
    n = m;
  }
  return RowThreshold{prefix, want};
}

}  // namespace
}  // namespace mumoe::cpu
