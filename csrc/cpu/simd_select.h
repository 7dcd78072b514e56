// The selection kernels of the fixed-width ISAs (AVX2, NEON): scores, the bracketed radix
// threshold, the row outputs, a given mask applied and the compact row expanded, written once over
// the folder's vector layers: F32Vec (as in cpu/simd_linear.h, plus mul, masked) and U32Vec
// (kLanes 32-bit lanes: load, store, dup, gt, eq, bound/at_least, compress, expand, keep,
// key_bits, widen_u16, store_narrow_u16, store_mask_bytes, mask_bits, keep_u16x2). Lane masks are
// the low kLanes bits of a uint32_t. Each ISA's select file includes this after its simd header
// and defines its entry points with MUMOE_DEFINE_LANE_SELECT_KERNELS(F32Vec, U32Vec) inside its
// namespace. Internal linkage, like scalar_helpers.h: every folder compiles its own copy with its
// own flags.
#pragma once
#include <cstring>

#include "cpu/scalar_helpers.h"

namespace mumoe::cpu {
namespace {

template <class U>
constexpr uint32_t kAllLanes = (1u << U::kLanes) - 1;

// Keep decisions in column order: kLanes keys at a time, and one at a time for row tails.
template <class U>
struct LaneKeeper {
  typename U::reg tau;
  KeepCursor cursor;
  explicit LaneKeeper(RowThreshold th) : tau(U::dup(th.tau)), cursor{th.tau, th.ties_kept} {}
  inline uint32_t next(const uint32_t* keys) {
    const typename U::reg v = U::load(keys);
    const uint32_t gt = U::gt(v, tau), eq = U::eq(v, tau);
    return eq ? uint32_t(take_ties(gt, eq, cursor.ties_left)) : gt;
  }
  inline bool next1(uint32_t key) { return cursor.next(key); }
};

template <class F, class U, DType DT>
void lane_scores(const void* w, const float* norms, int64_t d, uint32_t* keys) {
  constexpr int L = U::kLanes;
  int64_t j = 0;
  // |w·n| with the sign cleared after the product (key_bits): |w|·|n| bit for bit, one rounding
  // like the reference, two instructions fewer; it also clears the sign of a default NaN (inf * 0).
  for (; j + L <= d; j += L)
    U::store(keys + j, U::key_bits(F::mul(F::template load<DT>(w, j), F::loadu(norms + j))));
  for (; j < d; ++j) keys[j] = score_key(load_as_float(w, DT, j), norms[j]);
}

template <class F, class U>
void lane_row_scores(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys) {
  switch (dt) {
    case DType::f32: return lane_scores<F, U, DType::f32>(w, norms, d, keys);
    case DType::f16: return lane_scores<F, U, DType::f16>(w, norms, d, keys);
    default: return lane_scores<F, U, DType::bf16>(w, norms, d, keys);
  }
}

// One pass: *above = #keys in bins above r.hi; the keys of bins r.lo..r.hi packed into scratch
// (which has spare entries past d for the full-width stores) and counted (the return value).
template <class U>
int64_t lane_bracket_pass(const uint32_t* keys, int64_t d, BinBracket r, uint32_t* scratch, int64_t* above) {
  constexpr int L = U::kLanes;
  const KeyRange range = keys_of(r);
  const typename U::reg lo = U::bound(range.lo), hi = U::bound(range.hi);
  int64_t n = 0, gt = 0, j = 0;
  for (; j + L <= d; j += L) {
    const typename U::reg v = U::load(keys + j);
    const uint32_t up = U::at_least(v, hi), in = U::at_least(v, lo) & ~up;
    U::store(scratch + n, U::compress(v, in));
    n += __builtin_popcount(in);
    gt += __builtin_popcount(up);
  }
  for (; j < d; ++j) {
    gt += keys[j] >= range.hi;
    if (keys[j] >= range.lo && keys[j] < range.hi) scratch[n++] = keys[j];
  }
  *above = gt;
  return n;
}

template <class U>
RowThreshold lane_row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) {
  RowThreshold th;
  if (select_bracketed(keys, d, k, hint, scratch, lane_bracket_pass<U>, select_in_range, &th)) return th;
  return radix_select_scalar(keys, d, k, scratch);
}

template <class U>
void lane_emit_mask(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask) {
  LaneKeeper<U> keep(th);
  int64_t j = 0;
  for (; j + U::kLanes <= d; j += U::kLanes) U::store_mask_bytes(mask + j, keep.next(keys + j));
  for (; j < d; ++j) mask[j] = keep.next1(keys[j]);
}

// The pruned row as raw bits: kept values copied, dropped ones +0.
template <class U>
void lane_emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th, void* out) {
  constexpr int L = U::kLanes;
  LaneKeeper<U> keep(th);
  int64_t j = 0;
  if (dt == DType::f32) {
    const uint32_t* src = static_cast<const uint32_t*>(w);
    uint32_t* dst = static_cast<uint32_t*>(out);
    for (; j + L <= d; j += L) U::store(dst + j, U::keep(U::load(src + j), keep.next(keys + j)));
    for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : 0u;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 2 * L <= d; j += 2 * L)
    U::keep_u16x2(src + j, dst + j, keep.next(keys + j) | keep.next(keys + j + L) << L);
  for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : uint16_t(0);
}

// The row w with a byte mask applied (as emit_pruned, the mask given: nonzero bytes keep).
template <class U>
void lane_apply_mask(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out) {
  constexpr int L = U::kLanes;
  int64_t j = 0;
  if (dt == DType::f32) {
    const uint32_t* src = static_cast<const uint32_t*>(w);
    uint32_t* dst = static_cast<uint32_t*>(out);
    for (; j + L <= d; j += L) U::store(dst + j, U::keep(U::load(src + j), U::mask_bits(mask + j)));
    for (; j < d; ++j) dst[j] = mask[j] ? src[j] : 0u;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 2 * L <= d; j += 2 * L)
    U::keep_u16x2(src + j, dst + j, U::mask_bits(mask + j) | U::mask_bits(mask + j + L) << L);
  for (; j < d; ++j) dst[j] = mask[j] ? src[j] : uint16_t(0);
}

// c values of `packed` at dst (32-bit lanes, or their low halves for 16-bit E): a full-width
// store while it stays inside the row's k values, else through a buffer.
template <class U, class E>
inline void store_packed(E* dst, typename U::reg packed, int64_t n, int64_t k, int c) {
  auto store = [](E* q, typename U::reg v) {
    if constexpr (sizeof(E) == 4) U::store(q, v);
    else U::store_narrow_u16(q, v);
  };
  if (n + U::kLanes <= k) return store(dst, packed);
  E tmp[U::kLanes];
  store(tmp, packed);
  std::memcpy(dst, tmp, sizeof(E) * c);
}

template <class U>
void lane_emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values) {
  constexpr int L = U::kLanes;
  LaneKeeper<U> keep(th);
  const int64_t words = (d + 31) / 32;
  for (int64_t i = 0; i < words; ++i) bitmap[i] = 0;
  int64_t n = 0, j = 0;
  for (; j + L <= d; j += L) {
    const uint32_t m = keep.next(keys + j);
    bitmap[j >> 5] |= m << (j & 31);
    const int c = __builtin_popcount(m);
    if (dt == DType::f32) {
      const typename U::reg packed = U::compress(U::load(static_cast<const uint32_t*>(w) + j), m);
      store_packed<U>(static_cast<uint32_t*>(values) + n, packed, n, k, c);
    } else {
      const typename U::reg packed = U::compress(U::widen_u16(static_cast<const uint16_t*>(w) + j), m);
      store_packed<U>(static_cast<uint16_t*>(values) + n, packed, n, k, c);
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

// sum of w[j] * v[j] over the dropped columns. Four accumulators: one would serialise the row on
// the FMA latency.
template <class F, class U, DType DT>
float lane_pruned_dot_of(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, const float* v) {
  constexpr int L = U::kLanes;
  LaneKeeper<U> keep(th);
  auto add_dropped = [&](typename F::reg acc, int64_t j) {
    const uint32_t drop = ~keep.next(keys + j) & kAllLanes<U>;
    return F::fma(acc, F::masked(F::template load<DT>(w, j), drop), F::loadu(v + j));
  };
  typename F::reg acc[4] = {F::zero(), F::zero(), F::zero(), F::zero()};
  int64_t j = 0;
  for (; j + 4 * L <= d; j += 4 * L)
    for (int u = 0; u < 4; ++u) acc[u] = add_dropped(acc[u], j + L * u);
  for (; j + L <= d; j += L) acc[0] = add_dropped(acc[0], j);
  float sum = F::sum(F::add(F::add(acc[0], acc[1]), F::add(acc[2], acc[3])));
  for (; j < d; ++j)
    if (!keep.next1(keys[j])) sum += load_as_float(w, DT, j) * v[j];
  return sum;
}

template <class F, class U>
float lane_pruned_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th, const float* v) {
  switch (dt) {
    case DType::f32: return lane_pruned_dot_of<F, U, DType::f32>(w, keys, d, th, v);
    case DType::f16: return lane_pruned_dot_of<F, U, DType::f16>(w, keys, d, th, v);
    default: return lane_pruned_dot_of<F, U, DType::bf16>(w, keys, d, th, v);
  }
}

// kLanes packed values from p[n] as 32-bit lanes (16-bit ones widened), never reading past p[k).
template <class U, class E>
inline typename U::reg load_packed_lanes(const E* p, int64_t n, int64_t k) {
  auto lanes = [](const E* q) {
    if constexpr (sizeof(E) == 4) return U::load(q);
    else return U::widen_u16(q);
  };
  if (n + U::kLanes <= k) return lanes(p + n);
  E tmp[U::kLanes] = {};
  std::memcpy(tmp, p + n, sizeof(E) * (k - n));
  return lanes(tmp);
}

// The compact row (bitmap + packed values) written out dense, dropped columns +0.
template <class U>
void lane_expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k, void* out) {
  constexpr int L = U::kLanes;
  int64_t n = 0, j = 0;
  for (; j + L <= d; j += L) {
    const uint32_t m = bitmap[j >> 5] >> (j & 31) & kAllLanes<U>;
    if (dt == DType::f32)
      U::store(static_cast<uint32_t*>(out) + j, U::expand(load_packed_lanes<U>(static_cast<const uint32_t*>(values), n, k), m));
    else
      U::store_narrow_u16(static_cast<uint16_t*>(out) + j,
                          U::expand(load_packed_lanes<U>(static_cast<const uint16_t*>(values), n, k), m));
    n += __builtin_popcount(m);
  }
  const int64_t es = dtype_size(dt);
  for (; j < d; ++j) {
    char* dst = static_cast<char*>(out) + es * j;
    if (bitmap[j >> 5] >> (j & 31) & 1u) std::memcpy(dst, static_cast<const char*>(values) + es * n++, es);
    else std::memset(dst, 0, es);
  }
}

}  // namespace
}  // namespace mumoe::cpu

// The selection, masking and compact-format entry points of kernel_decls.h for the enclosing ISA
// namespace.
#define MUMOE_DEFINE_LANE_SELECT_KERNELS(F, U)                                                     \
  void row_scores(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys) {       \
    lane_row_scores<F, U>(w, dt, norms, d, keys);                                                  \
  }                                                                                                \
  RowThreshold row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) { \
    return lane_row_select<U>(keys, d, k, hint, scratch);                                          \
  }                                                                                                \
  void emit_mask(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask) {              \
    lane_emit_mask<U>(keys, d, th, mask);                                                          \
  }                                                                                                \
  void emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,     \
                   void* out, bool /*streaming*/) {                                                \
    lane_emit_pruned<U>(w, dt, keys, d, th, out);                                                  \
  }                                                                                                \
  void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,    \
                    int64_t k, uint32_t* bitmap, void* values) {                                   \
    lane_emit_compact<U>(w, dt, keys, d, th, k, bitmap, values);                                   \
  }                                                                                                \
  float pruned_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,     \
                   const float* v) {                                                               \
    return lane_pruned_dot<F, U>(w, dt, keys, d, th, v);                                           \
  }                                                                                                \
  float emit_compact_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th, \
                         int64_t k, uint32_t* bitmap, void* values, const float* v) {              \
    lane_emit_compact<U>(w, dt, keys, d, th, k, bitmap, values);                                   \
    return lane_pruned_dot<F, U>(w, dt, keys, d, th, v);                                           \
  }                                                                                                \
  void apply_mask(const void* w, DType dt, const uint8_t* mask, int64_t d, void* out) {           \
    lane_apply_mask<U>(w, dt, mask, d, out);                                                       \
  }                                                                                                \
  void expand_compact(const uint32_t* bitmap, const void* values, DType dt, int64_t d, int64_t k,  \
                      void* out) {                                                                 \
    lane_expand_compact<U>(bitmap, values, dt, d, k, out);                                         \
  }
