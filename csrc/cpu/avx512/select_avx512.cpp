// AVX-512 (F/BW/VL/DQ) selection kernels: scores, radix threshold, and the three row outputs.
// Compression uses the register forms of vpcompressd (the memory forms are microcoded and slow on
// Zen 4). Masked stores are slow there too, so full vectors are stored plainly wherever the
// destination has room (scratch has 16 spare lanes; compact values up to k) and masks are kept
// for the tails.
#include "cpu/avx512/simd_avx512.h"

namespace mumoe::cpu::avx512 {
namespace {

// Keep decisions of 16 keys at a time in column order (keys > tau, then the first ties == tau).
struct Keeper {
  __m512i tau;
  int64_t ties_left;
  Keeper(RowThreshold th) : tau(_mm512_set1_epi32(int32_t(th.tau))), ties_left(th.ties_kept) {}
  inline __mmask16 next(const uint32_t* keys, __mmask16 valid) {
    const __m512i v = _mm512_maskz_loadu_epi32(valid, keys);
    const __mmask16 gt = _mm512_mask_cmpgt_epu32_mask(valid, v, tau);
    const __mmask16 eq = _mm512_mask_cmpeq_epi32_mask(valid, v, tau);
    return eq ? __mmask16(take_ties(gt, eq, ties_left)) : gt;
  }
};

}  // namespace

namespace {
template <DType DT>
void scores_of(const void* w, const float* norms, int64_t d, uint32_t* keys) {
  const __m512i abs_bits = _mm512_set1_epi32(0x7fffffff);
  // One rounding, like the reference; the AND clears the sign of a default NaN (inf * 0).
  auto key16 = [&](int64_t j, __mmask16 m) {
    const __m512 s = _mm512_mul_ps(_mm512_abs_ps(load16<DT>(w, j, m)),
                                   _mm512_abs_ps(_mm512_maskz_loadu_ps(m, norms + j)));
    return _mm512_and_si512(_mm512_castps_si512(s), abs_bits);
  };
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) _mm512_storeu_si512(keys + j, key16(j, 0xffff));
  if (j < d) _mm512_mask_storeu_epi32(keys + j, lanes(d - j), key16(j, lanes(d - j)));
}
}  // namespace

void row_scores(const void* w, DType dt, const float* norms, int64_t d, uint32_t* keys) {
  switch (dt) {
    case DType::f32: return scores_of<DType::f32>(w, norms, d, keys);
    case DType::f16: return scores_of<DType::f16>(w, norms, d, keys);
    default: return scores_of<DType::bf16>(w, norms, d, keys);
  }
}

namespace {

// Full top-digit histogram of the row: the bin of the k-th largest key and the count above it.
uint32_t top_bin_exact(const uint32_t* keys, int64_t d, int64_t k, int64_t* above) {
  // Two interleaved histograms halve the store-forwarding chains on runs of equal keys.
  alignas(64) uint32_t hist[2 * kTopBins];
  const __m512i zero = _mm512_setzero_si512();
  for (int b = 0; b < 2 * kTopBins; b += 16) _mm512_store_si512(hist + b, zero);
  __m512i vmax = zero;
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) vmax = _mm512_max_epu32(vmax, _mm512_loadu_si512(keys + j));
  uint32_t top = _mm512_reduce_max_epu32(vmax);
  for (; j < d; ++j) top = keys[j] > top ? keys[j] : top;
  for (j = 0; j + 2 <= d; j += 2) {
    hist[keys[j] >> kTopShift]++;
    hist[kTopBins + (keys[j + 1] >> kTopShift)]++;
  }
  if (j < d) hist[keys[j] >> kTopShift]++;
  return scan_top_bins(hist, 2, top >> kTopShift, k, above);
}

// One pass over the row: *above = #keys in bins above r.hi; the keys of bins r.lo..r.hi are packed
// into scratch and counted (the return value).
int64_t bracket_pass(const uint32_t* keys, int64_t d, BinBracket r, uint32_t* scratch, int64_t* above) {
  const __m512i lo = _mm512_set1_epi32(int32_t(r.lo << kTopShift));
  const __m512i hi = _mm512_set1_epi32(int32_t((r.hi + 1) << kTopShift));  // <= 2^31: keys are below
  const __m512i width = _mm512_sub_epi32(hi, lo);
  const __m512i minus_one = _mm512_set1_epi32(-1);
  __m512i gt = _mm512_setzero_si512();
  int64_t n = 0;
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j);
    const __m512i v = _mm512_maskz_loadu_epi32(valid, keys + j);
    // lo <= v < hi as one unsigned compare of v - lo (keys below lo wrap around to large values).
    const __mmask16 in = _mm512_mask_cmplt_epu32_mask(valid, _mm512_sub_epi32(v, lo), width);
    gt = _mm512_mask_sub_epi32(gt, _mm512_cmpge_epu32_mask(v, hi), gt, minus_one);
    _mm512_storeu_si512(scratch + n, _mm512_maskz_compress_epi32(in, v));
    n += __builtin_popcount(in);
  }
  *above = _mm512_reduce_add_epi32(gt);
  return n;
}

}  // namespace

RowThreshold row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) {
  RowThreshold th;
  if (select_bracketed(keys, d, k, hint, scratch, bracket_pass, &th)) return th;
  int64_t above = 0;
  BinBracket r;
  r.lo = r.hi = top_bin_exact(keys, d, k, &above);
  const int64_t n = bracket_pass(keys, d, r, scratch, &above);
  return select_in_bins(scratch, n, k - above, r);
}

void emit_mask(const uint32_t* keys, int64_t d, RowThreshold th, uint8_t* mask) {
  Keeper keep(th);
  const __m512i one = _mm512_set1_epi8(1);
  int64_t j = 0;
  for (; j + 64 <= d; j += 64) {
    const uint64_t m = uint64_t(keep.next(keys + j, 0xffff)) |
                       uint64_t(keep.next(keys + j + 16, 0xffff)) << 16 |
                       uint64_t(keep.next(keys + j + 32, 0xffff)) << 32 |
                       uint64_t(keep.next(keys + j + 48, 0xffff)) << 48;
    _mm512_storeu_si512(mask + j, _mm512_maskz_mov_epi8(m, one));
  }
  for (; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j);
    _mm_mask_storeu_epi8(mask + j, valid, _mm_maskz_mov_epi8(keep.next(keys + j, valid), _mm_set1_epi8(1)));
  }
}

namespace {
// A pruned weight that exceeds the caches is read back from memory anyway: when the caller says so
// and whole cache lines allow it, streaming stores skip the read-for-ownership of every line.
template <bool kStream>
void pruned_row(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th, void* out) {
  Keeper keep(th);
  if (dt == DType::f32) {
    const float* src = static_cast<const float*>(w);
    float* dst = static_cast<float*>(out);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 valid = lanes(d - j);
      const __m512 v = _mm512_maskz_loadu_ps(keep.next(keys + j, valid), src + j);
      if constexpr (kStream) _mm512_stream_ps(dst + j, v);
      else if (valid == 0xffff) _mm512_storeu_ps(dst + j, v);
      else _mm512_mask_storeu_ps(dst + j, valid, v);
    }
    return;
  }
  const uint16_t* src = static_cast<const uint16_t*>(w);
  uint16_t* dst = static_cast<uint16_t*>(out);
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask16 v0 = lanes(d - j), v1 = d - j > 16 ? lanes(d - j - 16) : 0;
    const __mmask32 valid = __mmask32(v0) | __mmask32(v1) << 16;
    __mmask32 m = keep.next(keys + j, v0);
    if (v1) m |= __mmask32(keep.next(keys + j + 16, v1)) << 16;
    const __m512i v = _mm512_maskz_loadu_epi16(m, src + j);
    if constexpr (kStream) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + j), v);
    else if (valid == ~__mmask32(0)) _mm512_storeu_si512(dst + j, v);
    else _mm512_mask_storeu_epi16(dst + j, valid, v);
  }
}
}  // namespace

void emit_pruned(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                 void* out, bool streaming) {
  if (streaming && reinterpret_cast<uintptr_t>(out) % 64 == 0 && d * dtype_size(dt) % 64 == 0) {
    pruned_row<true>(w, dt, keys, d, th, out);
    _mm_sfence();  // order the streaming stores before the threads join
  } else {
    pruned_row<false>(w, dt, keys, d, th, out);
  }
}

namespace {
// Running sum of w[j] * v[j] over the dropped lanes of 16-column chunks, in two accumulators that
// alternate by chunk (even chunks in acc[0]): pruned_dot and emit_compact_dot share this order, so
// the plain phase and the prefill give the same offsets bit for bit. Callers step 32 columns at a
// time and name the accumulator, so both stay in registers.
inline __m512 add_dropped(__m512 acc, __m512 wf, const float* v, int64_t j, __mmask16 drop) {
  return _mm512_fmadd_ps(_mm512_maskz_mov_ps(drop, wf), _mm512_maskz_loadu_ps(drop, v + j), acc);
}

// emit_compact of one 16-column chunk (w loaded once, for the packed values and for the dot).
// Returns the chunk's weights as fp32 for the dot.
template <DType DT, bool kDot>
inline __m512 compact_chunk(const void* w, int64_t j, __mmask16 valid, __mmask16 m, int64_t k,
                            int64_t& n, uint32_t* bitmap, void* values) {
  if ((j & 31) == 0)
    bitmap[j >> 5] = m;
  else
    bitmap[j >> 5] |= uint32_t(m) << 16;
  __m512 wf = _mm512_setzero_ps();
  const int c = __builtin_popcount(m);
  if constexpr (DT == DType::f32) {
    const __m512 x = _mm512_maskz_loadu_ps(kDot ? valid : m, static_cast<const float*>(w) + j);
    wf = x;
    if (m) {
      float* dst = static_cast<float*>(values) + n;
      const __m512 packed = _mm512_maskz_compress_ps(m, x);
      if (n + 16 <= k) _mm512_storeu_ps(dst, packed);
      else _mm512_mask_storeu_ps(dst, lanes(c), packed);
    }
  } else {
    // No 16-bit compress without VBMI2: widen to 32-bit lanes, compress, narrow.
    const __m256i h = _mm256_maskz_loadu_epi16(kDot ? valid : m, static_cast<const uint16_t*>(w) + j);
    const __m512i wide = _mm512_cvtepu16_epi32(h);
    if constexpr (kDot) {
      if constexpr (DT == DType::f16) wf = _mm512_cvtph_ps(h);
      else wf = _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    }
    if (m) {
      const __m512i packed = _mm512_maskz_compress_epi32(m, wide);
      uint16_t* dst = static_cast<uint16_t*>(values) + n;
      if (n + 16 <= k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(packed));
      else _mm256_mask_storeu_epi16(dst, lanes(c), _mm512_cvtepi32_epi16(packed));
    }
  }
  n += c;
  return wf;
}

// emit_compact, and with kDot the pruned_dot of v in the same pass over the keys.
template <DType DT, bool kDot>
float compact_row(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, int64_t k,
                  uint32_t* bitmap, void* values, const float* v) {
  Keeper keep(th);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t n = 0;  // full 16-lane stores while they stay inside the row's k values
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask16 valid0 = lanes(d - j);
    const __mmask16 m0 = keep.next(keys + j, valid0);
    const __m512 w0 = compact_chunk<DT, kDot>(w, j, valid0, m0, k, n, bitmap, values);
    if constexpr (kDot) acc0 = add_dropped(acc0, w0, v, j, valid0 & ~m0);
    if (j + 16 >= d) break;
    const __mmask16 valid1 = lanes(d - j - 16);
    const __mmask16 m1 = keep.next(keys + j + 16, valid1);
    const __m512 w1 = compact_chunk<DT, kDot>(w, j + 16, valid1, m1, k, n, bitmap, values);
    if constexpr (kDot) acc1 = add_dropped(acc1, w1, v, j + 16, valid1 & ~m1);
  }
  return kDot ? _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) : 0.0f;
}

template <bool kDot>
float compact_row(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values, const float* v) {
  switch (dt) {
    case DType::f32: return compact_row<DType::f32, kDot>(w, keys, d, th, k, bitmap, values, v);
    case DType::f16: return compact_row<DType::f16, kDot>(w, keys, d, th, k, bitmap, values, v);
    default: return compact_row<DType::bf16, kDot>(w, keys, d, th, k, bitmap, values, v);
  }
}
}  // namespace

void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values) {
  compact_row<false>(w, dt, keys, d, th, k, bitmap, values, nullptr);
}

float emit_compact_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values, const float* v) {
  return compact_row<true>(w, dt, keys, d, th, k, bitmap, values, v);
}

namespace {
template <DType DT>
float pruned_dot_of(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, const float* v) {
  Keeper keep(th);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask16 valid0 = lanes(d - j);
    const __mmask16 drop0 = valid0 & ~keep.next(keys + j, valid0);
    acc0 = add_dropped(acc0, load16<DT>(w, j, drop0), v, j, drop0);
    if (j + 16 >= d) break;
    const __mmask16 valid1 = lanes(d - j - 16);
    const __mmask16 drop1 = valid1 & ~keep.next(keys + j + 16, valid1);
    acc1 = add_dropped(acc1, load16<DT>(w, j + 16, drop1), v, j + 16, drop1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
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

}  // namespace mumoe::cpu::avx512
