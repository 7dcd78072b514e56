// The compact outputs of 16-bit rows (emit_compact, emit_compact_dot, emit_pruned_compact) for
// CPUs that also have AVX512-VBMI2: vpcompressw packs 32 kept values in one instruction, where the
// base kernels widen 16 of them to 32-bit lanes, compress and narrow back; each 32-column bitmap
// word is stored whole. Only this file is compiled for VBMI2; the avx512 table points at it when
// cpu_features() reports it. fp32 rows go to the base kernels. Same outputs bit for bit (the dot
// keeps pruned_dot's order: even 16-column chunks in one accumulator, odd ones in the other).
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/avx512/simd_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx512vbmi2")

namespace mumoe::cpu::avx512 {

namespace {

template <DType DT, bool kDot, bool kPruned>
float compact_row16(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, int64_t k,
                    uint32_t* bitmap, void* values, const float* v, void* pruned) {
  Keeper keep(th);
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* vals = static_cast<uint16_t*>(values);
  uint16_t* out = static_cast<uint16_t*>(pruned);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t n = 0;  // full 32-lane stores while they stay inside the row's k values
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask16 v0 = lanes(d - j), v1 = lanes(d - j - 16);
    const __mmask16 m0 = keep.next(keys + j, v0), m1 = v1 ? keep.next(keys + j + 16, v1) : 0;
    const __mmask32 valid = __mmask32(v0) | __mmask32(v1) << 16, m = __mmask32(m0) | __mmask32(m1) << 16;
    bitmap[j >> 5] = m;
    const __m512i h = _mm512_maskz_loadu_epi16(kDot ? valid : m, src + j);
    if constexpr (kPruned) {
      const __m512i kept = kDot ? _mm512_maskz_mov_epi16(m, h) : h;
      if (valid == ~__mmask32(0)) _mm512_storeu_si512(out + j, kept);
      else _mm512_mask_storeu_epi16(out + j, valid, kept);
    }
    const int c = __builtin_popcount(m);
    if (m) {
      const __m512i packed = _mm512_maskz_compress_epi16(m, h);
      if (n + 32 <= k) _mm512_storeu_si512(vals + n, packed);
      else _mm512_mask_storeu_epi16(vals + n, lanes32(c), packed);
    }
    n += c;
    if constexpr (kDot) {
      acc0 = add_dropped(acc0, widen16<DT>(_mm512_castsi512_si256(h)), v, j, v0 & ~m0);
      if (v1) acc1 = add_dropped(acc1, widen16<DT>(_mm512_extracti64x4_epi64(h, 1)), v, j + 16, v1 & ~m1);
    }
  }
  return kDot ? _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) : 0.0f;
}

template <bool kDot, bool kPruned>
float compact16(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th, int64_t k,
                uint32_t* bitmap, void* values, const float* v, void* pruned) {
  if (dt == DType::f16) return compact_row16<DType::f16, kDot, kPruned>(w, keys, d, th, k, bitmap, values, v, pruned);
  return compact_row16<DType::bf16, kDot, kPruned>(w, keys, d, th, k, bitmap, values, v, pruned);
}

}  // namespace

void emit_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                        int64_t k, uint32_t* bitmap, void* values) {
  if (dt == DType::f32) return emit_compact(w, dt, keys, d, th, k, bitmap, values);
  compact16<false, false>(w, dt, keys, d, th, k, bitmap, values, nullptr, nullptr);
}

float emit_compact_dot_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                             int64_t k, uint32_t* bitmap, void* values, const float* v) {
  if (dt == DType::f32) return emit_compact_dot(w, dt, keys, d, th, k, bitmap, values, v);
  return compact16<true, false>(w, dt, keys, d, th, k, bitmap, values, v, nullptr);
}

float emit_pruned_compact_vbmi2(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                                int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v) {
  if (dt == DType::f32) return emit_pruned_compact(w, dt, keys, d, th, k, pruned, bitmap, values, v);
  if (v) return compact16<true, true>(w, dt, keys, d, th, k, bitmap, values, v, pruned);
  return compact16<false, true>(w, dt, keys, d, th, k, bitmap, values, nullptr, pruned);
}

}  // namespace mumoe::cpu::avx512

#pragma GCC pop_options
