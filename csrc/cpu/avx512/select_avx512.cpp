// AVX-512 (F/BW/VL/DQ) selection kernels: scores, radix threshold, and the three row outputs.
// Compression uses the register forms of vpcompressd (the memory forms are microcoded and slow on
// Zen 4). Masked stores are slow there too, so full vectors are stored plainly wherever the
// destination has room (scratch has 16 spare lanes; compact values up to k) and masks are kept
// for the tails.
#include "cpu/avx512/kernels_avx512.h"
#include "cpu/avx512/simd_avx512.h"

namespace mumoe::cpu::avx512 {

namespace {
// The score keys of columns j..j+16 (lanes outside m zero): |w·n| with the sign cleared after the
// product, which is |w|·|n| bit for bit (rounding to nearest does not depend on the sign; a NaN keeps
// its payload) at two instructions fewer than the reference's order. The AND also clears the sign
// of a default NaN (inf * 0).
template <DType DT>
inline __m512i key16(const void* w, const float* norms, int64_t j, __mmask16 m) {
  const __m512 s = _mm512_mul_ps(load16<DT>(w, j, m), _mm512_maskz_loadu_ps(m, norms + j));
  return _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(0x7fffffff));
}

// The scoring passes prefetch the weights 2 KiB ahead of each 16 columns they score (into the next
// row near its end). The hardware prefetcher alone left them waiting on W: prune_rows 7-17% faster
// on 5632 x 2048, 2048 x 5632 and 2048^2 (Zen 4, in-process A/B; 512 B ahead was too short, 4-8
// KiB no better). A burst at the row's start is worse (RowSelector::select).
constexpr int64_t kPrefetchBytes = 2048;
template <DType DT>
inline void prefetch_ahead(const void* w, int64_t j) {
  _mm_prefetch(static_cast<const char*>(w) + j * dtype_size(DT) + kPrefetchBytes, _MM_HINT_T0);
}

template <DType DT>
void scores_of(const void* w, const float* norms, int64_t d, uint32_t* keys) {
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    prefetch_ahead<DT>(w, j);
    _mm512_storeu_si512(keys + j, key16<DT>(w, norms, j, 0xffff));
  }
  if (j < d) _mm512_mask_storeu_epi32(keys + j, lanes(d - j), key16<DT>(w, norms, j, lanes(d - j)));
}

// Keys in [lo, hi) packed into scratch in column order (n of them), and the count of keys >= hi,
// 16 keys at a time: the bracket passes of the selection.
struct RangePacker {
  __m512i lo, width, hi, gt = _mm512_setzero_si512();
  int64_t n = 0;
  RangePacker(uint32_t lo_, uint32_t hi_)  // hi_ <= 2^31: keys are below
      : lo(_mm512_set1_epi32(int32_t(lo_))), width(_mm512_set1_epi32(int32_t(hi_ - lo_))),
        hi(_mm512_set1_epi32(int32_t(hi_))) {}
  inline void add(__m512i v, __mmask16 valid, uint32_t* scratch) {
    // lo <= v < hi as one unsigned compare of v - lo (keys below lo wrap around to large values).
    const __mmask16 in = _mm512_mask_cmplt_epu32_mask(valid, _mm512_sub_epi32(v, lo), width);
    gt = _mm512_mask_sub_epi32(gt, _mm512_mask_cmpge_epu32_mask(valid, v, hi), gt, _mm512_set1_epi32(-1));
    _mm512_storeu_si512(scratch + n, _mm512_maskz_compress_epi32(in, v));
    n += __builtin_popcount(in);
  }
  int64_t above() const { return _mm512_reduce_add_epi32(gt); }
};
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
  const KeyRange range = keys_of(r);
  RangePacker pack(range.lo, range.hi);
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j);
    pack.add(_mm512_maskz_loadu_epi32(valid, keys + j), valid, scratch);
  }
  *above = pack.above();
  return pack.n;
}

// select_in_range, bit by bit from the top: the want-th largest of the n keys in [r.lo, r.hi) is
// lo + the largest t with #(keys - lo >= t) >= want (1 <= want <= n). One compare per 16 keys per
// bit of the span: for the hundred-odd keys a near range holds, cheaper than select_among's scalar
// histogram rounds. Same threshold and tie count.
RowThreshold select_in_range_bits(uint32_t* cand, int64_t n, int64_t want, KeyRange r) {
  const __m512i lo = _mm512_set1_epi32(int32_t(r.lo));
  const int64_t full = n / 16 * 16;
  const __mmask16 tail = lanes(n - full);
  // Offsets from lo in place (scratch has 16 spare lanes, so the tail vector stays inside it).
  for (int64_t i = 0; i < n; i += 16)
    _mm512_storeu_si512(cand + i, _mm512_sub_epi32(_mm512_loadu_si512(cand + i), lo));
  auto count_at_least = [&](uint32_t t) {
    const __m512i tv = _mm512_set1_epi32(int32_t(t));
    int64_t c = 0;
    for (int64_t i = 0; i < full; i += 16)
      c += __builtin_popcount(_mm512_cmpge_epu32_mask(_mm512_loadu_si512(cand + i), tv));
    if (tail) c += __builtin_popcount(_mm512_mask_cmpge_epu32_mask(tail, _mm512_loadu_si512(cand + full), tv));
    return c;
  };
  uint32_t t = 0;
  for (int bit = span_bits(r) - 1; bit >= 0; --bit)
    if (count_at_least(t | 1u << bit) >= want) t |= 1u << bit;
  const int64_t above = count_at_least(t + 1);  // the keys above the threshold (t < 2^31)
  return RowThreshold{r.lo + t, want - above};
}
}  // namespace

RowThreshold row_select(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint, uint32_t* scratch) {
  RowThreshold th;
  if (select_bracketed(keys, d, k, hint, scratch, bracket_pass, select_in_range_bits, &th)) return th;
  int64_t above = 0;
  BinBracket r;
  r.lo = r.hi = top_bin_exact(keys, d, k, &above);
  const int64_t n = bracket_pass(keys, d, r, scratch, &above);
  return select_in_range_bits(scratch, n, k - above, keys_of(r));
}

namespace {
// row_scores, and in the same pass the keys in r packed into scratch (their count returned),
// *above = #keys >= r.hi and *max_key = the largest key.
template <DType DT>
int64_t scores_in_range(const void* w, const float* norms, int64_t d, uint32_t* keys, KeyRange r,
                        uint32_t* scratch, int64_t* above, uint32_t* max_key) {
  RangePacker pack(r.lo, r.hi);
  __m512i top = _mm512_setzero_si512();
  for (int64_t j = 0; j < d; j += 16) {
    const __mmask16 valid = lanes(d - j);
    prefetch_ahead<DT>(w, j);
    const __m512i key = key16<DT>(w, norms, j, valid);
    if (valid == 0xffff) _mm512_storeu_si512(keys + j, key);
    else _mm512_mask_storeu_epi32(keys + j, valid, key);
    top = _mm512_max_epu32(top, key);  // lanes past d are 0
    pack.add(key, valid, scratch);
  }
  *above = pack.above();
  *max_key = _mm512_reduce_max_epu32(top);
  return pack.n;
}
}  // namespace

RowThreshold score_select(const void* w, DType dt, const float* norms, int64_t d, int64_t k,
                          uint32_t hint, int near_shift, uint32_t* keys, uint32_t* scratch,
                          uint32_t* max_key, bool* near_hit) {
  // Without a hint the range is empty: the pass only scores (and finds the largest key).
  const KeyRange r = hint != kNoHint ? range_near(hint, near_shift) : KeyRange{0, 0};
  int64_t above = 0, n = 0;
  switch (dt) {
    case DType::f32: n = scores_in_range<DType::f32>(w, norms, d, keys, r, scratch, &above, max_key); break;
    case DType::f16: n = scores_in_range<DType::f16>(w, norms, d, keys, r, scratch, &above, max_key); break;
    default: n = scores_in_range<DType::bf16>(w, norms, d, keys, r, scratch, &above, max_key); break;
  }
  *near_hit = hint != kNoHint && above < k && k <= above + n;
  if (*near_hit) return select_in_range_bits(scratch, n, k - above, r);
  // Missed (or no hint): the row's keys are stored; the usual search, which tries the coarser
  // bracket around the hint first.
  return row_select(keys, d, k, hint, scratch);
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
// emit_compact of one 16-column chunk (w loaded once, for the packed values, the dot and the
// pruned row). Returns the chunk's weights as fp32 for the dot. kPruned: also the chunk of the
// dense pruned row (dropped lanes zero) at pruned[j..j+16).
template <DType DT, bool kDot, bool kPruned>
inline __m512 compact_chunk(const void* w, int64_t j, __mmask16 valid, __mmask16 m, int64_t k,
                            int64_t& n, uint32_t* bitmap, void* values, void* pruned) {
  if ((j & 31) == 0)
    bitmap[j >> 5] = m;
  else
    bitmap[j >> 5] |= uint32_t(m) << 16;
  __m512 wf = _mm512_setzero_ps();
  const int c = __builtin_popcount(m);
  if constexpr (DT == DType::f32) {
    const __m512 x = _mm512_maskz_loadu_ps(kDot ? valid : m, static_cast<const float*>(w) + j);
    wf = x;
    if constexpr (kPruned) {
      float* dst = static_cast<float*>(pruned) + j;
      const __m512 kept = kDot ? _mm512_maskz_mov_ps(m, x) : x;
      if (valid == 0xffff) _mm512_storeu_ps(dst, kept);
      else _mm512_mask_storeu_ps(dst, valid, kept);
    }
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
    if constexpr (kPruned) {
      uint16_t* dst = static_cast<uint16_t*>(pruned) + j;
      const __m256i kept = kDot ? _mm256_maskz_mov_epi16(m, h) : h;
      if (valid == 0xffff) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), kept);
      else _mm256_mask_storeu_epi16(dst, valid, kept);
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

// emit_compact, with kDot the pruned_dot of v and with kPruned emit_pruned, in one pass over the keys.
template <DType DT, bool kDot, bool kPruned>
float compact_row(const void* w, const uint32_t* keys, int64_t d, RowThreshold th, int64_t k,
                  uint32_t* bitmap, void* values, const float* v, void* pruned) {
  Keeper keep(th);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t n = 0;  // full 16-lane stores while they stay inside the row's k values
  for (int64_t j = 0; j < d; j += 32) {
    const __mmask16 valid0 = lanes(d - j);
    const __mmask16 m0 = keep.next(keys + j, valid0);
    const __m512 w0 = compact_chunk<DT, kDot, kPruned>(w, j, valid0, m0, k, n, bitmap, values, pruned);
    if constexpr (kDot) acc0 = add_dropped(acc0, w0, v, j, valid0 & ~m0);
    if (j + 16 >= d) break;
    const __mmask16 valid1 = lanes(d - j - 16);
    const __mmask16 m1 = keep.next(keys + j + 16, valid1);
    const __m512 w1 = compact_chunk<DT, kDot, kPruned>(w, j + 16, valid1, m1, k, n, bitmap, values, pruned);
    if constexpr (kDot) acc1 = add_dropped(acc1, w1, v, j + 16, valid1 & ~m1);
  }
  return kDot ? _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) : 0.0f;
}

template <bool kDot, bool kPruned>
float compact_row(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values, const float* v, void* pruned) {
  switch (dt) {
    case DType::f32: return compact_row<DType::f32, kDot, kPruned>(w, keys, d, th, k, bitmap, values, v, pruned);
    case DType::f16: return compact_row<DType::f16, kDot, kPruned>(w, keys, d, th, k, bitmap, values, v, pruned);
    default: return compact_row<DType::bf16, kDot, kPruned>(w, keys, d, th, k, bitmap, values, v, pruned);
  }
}
}  // namespace

void emit_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                  int64_t k, uint32_t* bitmap, void* values) {
  compact_row<false, false>(w, dt, keys, d, th, k, bitmap, values, nullptr, nullptr);
}

float emit_compact_dot(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                       int64_t k, uint32_t* bitmap, void* values, const float* v) {
  return compact_row<true, false>(w, dt, keys, d, th, k, bitmap, values, v, nullptr);
}

float emit_pruned_compact(const void* w, DType dt, const uint32_t* keys, int64_t d, RowThreshold th,
                          int64_t k, void* pruned, uint32_t* bitmap, void* values, const float* v) {
  if (v) return compact_row<true, true>(w, dt, keys, d, th, k, bitmap, values, v, pruned);
  return compact_row<false, true>(w, dt, keys, d, th, k, bitmap, values, nullptr, pruned);
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
