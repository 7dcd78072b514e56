// AVX2 selection kernels: scores, sampled-bracket radix threshold, and the three row outputs.
// Keys are below 2^31 (sign cleared), so signed 32-bit compares order them correctly.
#include "cpu/avx2/simd_avx2.h"

namespace mumoe::cpu::avx2 {
namespace {

// Keep decisions in column order: 8 keys at a time, and one at a time for row tails.
struct Keeper {
  __m256i tau;
  KeepCursor cursor;
  Keeper(RowThreshold th) : tau(_mm256_set1_epi32(int32_t(th.tau))), cursor{th.tau, th.ties_kept} {}
  inline uint32_t next8(const uint32_t* keys) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys));
    const uint32_t gt = bits_of(_mm256_cmpgt_epi32(v, tau));
    const uint32_t eq = bits_of(_mm256_cmpeq_epi32(v, tau));
    return eq ? uint32_t(take_ties(gt, eq, cursor.ties_left)) : gt;
  }
  inline bool next1(uint32_t key) { return cursor.next(key); }
};

template <DType DT>
void scores_of(const void* w, const float* norms, int64_t d, uint32_t* keys) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256 wv = _mm256_and_ps(load8<DT>(w, j), abs_mask);
    const __m256 nv = _mm256_and_ps(_mm256_loadu_ps(norms + j), abs_mask);
    // One rounding, like the reference; the AND clears the sign of a default NaN (inf * 0).
    const __m256 s = _mm256_and_ps(_mm256_mul_ps(wv, nv), abs_mask);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + j), _mm256_castps_si256(s));
  }
  for (; j < d; ++j) keys[j] = score_key(load_as_float(w, DT, j), norms[j]);
}

// One pass: *above = #keys in bins above r.hi; keys of bins r.lo..r.hi packed into scratch
// (which has 8 spare entries past d for the full-width stores).
int64_t bracket_pass(const uint32_t* keys, int64_t d, BinBracket r, uint32_t* scratch, int64_t* above) {
  const uint32_t lo = r.lo << kTopShift, hi = (r.hi + 1) << kTopShift;
  const __m256i lo_m1 = _mm256_set1_epi32(int32_t(lo) - 1), hi_m1 = _mm256_set1_epi32(int32_t(hi - 1));
  int64_t n = 0, gt = 0, j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + j));
    const uint32_t up = bits_of(_mm256_cmpgt_epi32(v, hi_m1));
    const uint32_t in = bits_of(_mm256_cmpgt_epi32(v, lo_m1)) & ~up;
    const __m256i packed = _mm256_permutevar8x32_epi32(v, nibble_indices(kMaskTables.compress[in]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(scratch + n), packed);
    n += __builtin_popcount(in);
    gt += __builtin_popcount(up);
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
  for (; j + 8 <= d; j += 8) std::memcpy(mask + j, &kMaskTables.bytes[keep.next8(keys + j)], 8);
  for (; j < d; ++j) mask[j] = keep.next1(keys[j]);
}

void emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 void* out, bool /*streaming*/) {
  Keeper keep(th);
  int64_t j = 0;
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (; j + 8 <= d; j += 8) {
      const __m256 m = _mm256_castsi256_ps(lanes_of(keep.next8(keys + j)));
      _mm256_storeu_ps(dst + j, _mm256_and_ps(_mm256_loadu_ps(src + j), m));
    }
    for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : 0.0f;
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (; j + 16 <= d; j += 16) {
    const uint32_t m = keep.next8(keys + j) | keep.next8(keys + j + 8) << 8;
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_and_si256(v, lanes16_of(m)));
  }
  for (; j < d; ++j) dst[j] = keep.next1(keys[j]) ? src[j] : uint16_t(0);
}

void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values) {
  Keeper keep(th);
  const int64_t words = (d + 31) / 32;
  for (int64_t i = 0; i < words; ++i) bitmap[i] = 0;
  int64_t n = 0, j = 0;
  for (; j + 8 <= d; j += 8) {
    const uint32_t m = keep.next8(keys + j);
    bitmap[j >> 5] |= m << (j & 31);
    const __m256i idx = nibble_indices(kMaskTables.compress[m]);
    const int c = __builtin_popcount(m);
    if (dt == DType::f32) {
      float* dst = static_cast<float*>(values) + n;
      const __m256 packed = _mm256_permutevar8x32_ps(_mm256_loadu_ps(static_cast<const float*>(w) + j), idx);
      if (n + 8 <= k) _mm256_storeu_ps(dst, packed);
      else _mm256_maskstore_ps(dst, lanes_of((1u << c) - 1), packed);  // stay inside this row
    } else {
      uint16_t* dst = static_cast<uint16_t*>(values) + n;
      const __m256i wide = widen8_u16(load_u16x8(static_cast<const uint16_t*>(w) + j));
      const __m128i packed = narrow8_u16(_mm256_permutevar8x32_epi32(wide, idx));
      if (n + 8 <= k) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), packed);
      } else {
        alignas(16) uint16_t tmp[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), packed);
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
// Four accumulators: one would serialise the row on the FMA latency.
template <DType DT>
float pruned_dot_of(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, const float* v) {
  Keeper keep(th);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t j = 0;
  for (; j + 32 <= d; j += 32)
    for (int u = 0; u < 4; ++u) {
      const int64_t c = j + 8 * u;
      const __m256 drop = _mm256_castsi256_ps(lanes_of(~keep.next8(keys + c) & 0xffu));
      acc[u] = _mm256_fmadd_ps(_mm256_and_ps(load8<DT>(w, c), drop), _mm256_loadu_ps(v + c), acc[u]);
    }
  for (; j + 8 <= d; j += 8) {
    const __m256 drop = _mm256_castsi256_ps(lanes_of(~keep.next8(keys + j) & 0xffu));
    acc[0] = _mm256_fmadd_ps(_mm256_and_ps(load8<DT>(w, j), drop), _mm256_loadu_ps(v + j), acc[0]);
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  float sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
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

}  // namespace mumoe::cpu::avx2
