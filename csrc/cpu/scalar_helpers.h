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

// fp32 bits -> bf16 bits (in the low 16 of each 32), rounded to nearest even as c10::BFloat16
// rounds, a NaN kept a quiet NaN. One expression for a uint32_t and for a GCC vector of them: the
// ISA folders apply it to whole registers (U = uint32_t __attribute__((vector_size(...)))).
template <class U>
inline U bf16_bits(U u) {
  return (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

inline uint16_t float_to_bf16(float f) { return uint16_t(bf16_bits(float_to_bits(f))); }

// fp32 -> f16 bits, rounded to nearest even, overflow to inf, NaN a quiet NaN (no _Float16: GCC 12
// has none for C++ on AArch64).
inline uint16_t float_to_f16(float f) {
  const uint32_t u = float_to_bits(f), a = u & 0x7fffffffu;
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  if (a > 0x7f800000u) return sign | 0x7e00u;        // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;       // >= 65520 rounds to inf
  if (a >= 0x38800000u)                              // normal f16: rebias, round on bit 13
    return sign | uint16_t((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13);
  // Subnormal (or zero): 0.5f has a ulp of 2^-24, the f16 subnormal step, so the fp32 add rounds
  // |f| to that step (to nearest even) and leaves the count in the low mantissa bits.
  return sign | uint16_t(float_to_bits(bits_to_float(a) + 0.5f) - 0x3f000000u);
}

inline void store_from_float(void* p, DType dt, int64_t i, float v) {
  switch (dt) {
    case DType::f32: static_cast<float*>(p)[i] = v; return;
    case DType::f16: static_cast<uint16_t*>(p)[i] = float_to_f16(v); return;
    default: static_cast<uint16_t*>(p)[i] = float_to_bf16(v); return;
  }
}

// add_cols for columns [i0, n) of every row: the tails of the vector kernels, and the whole of it
// where a folder has no vector form.
inline void add_cols_from(void* y, DType dt, int64_t T, int64_t n, int64_t ld, const float* add,
                          int64_t i0) {
  const int64_t es = dtype_size(dt);
  for (int64_t t = 0; t < T; ++t) {
    char* row = static_cast<char*>(y) + es * ld * t;
    for (int64_t i = i0; i < n; ++i) store_from_float(row, dt, i, load_as_float(row, dt, i) + add[i]);
  }
}

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

// Keep the lowest `ties_left` set bits of `eq` (keys equal to tau, in column order) on top of `gt`.
inline uint64_t take_ties(uint64_t gt, uint64_t eq, int64_t& ties_left) {
  if (!eq || ties_left <= 0) return gt;
  const int64_t n = __builtin_popcountll(eq);
  if (n <= ties_left) {
    ties_left -= n;
    return gt | eq;
  }
  for (; ties_left > 0; --ties_left) {
    gt |= eq & (~eq + 1);
    eq &= eq - 1;
  }
  return gt;
}

// The first radix digit: bits 30..20 of a key (the sign bit is always clear), 2048 bins.
constexpr int kTopShift = 20;
constexpr int kTopBins = 2048;

// Bin of the want-th largest key from top-digit counts (the sum of `parts` interleaved
// histograms), scanning down from `start`; `above` gets the count in higher bins.
inline uint32_t scan_top_bins(const uint32_t* h, int parts, uint32_t start, int64_t want,
                              int64_t* above) {
  int64_t acc = 0;
  for (uint32_t b = start;; --b) {
    int64_t c = 0;
    for (int p = 0; p < parts; ++p) c += h[p * kTopBins + b];
    if (acc + c >= want || b == 0) {
      *above = acc;
      return b;
    }
    acc += c;
  }
}

// The want-th largest of n candidate keys, all in [base, base + 2^span_bits) (1 <= want <= n).
// Filters `cand` in place: a histogram of the offsets from `base` per round, of up to 512 bins but
// about 2n for fewer candidates (clearing and scanning the bins costs more than counting a few
// dozen keys); small sets are finished by direct counting.
inline RowThreshold select_among(uint32_t* cand, int64_t n, int64_t want, uint32_t base, int span_bits) {
  constexpr int kDigit = 9;
  uint32_t hist[1 << kDigit];
  for (;;) {
    if (span_bits == 0) return RowThreshold{cand[0], want};
    if (n <= 32) {
      for (int64_t i = 0;; ++i) {
        int64_t gt = 0, eq = 0;
        for (int64_t j = 0; j < n; ++j) {
          gt += cand[j] > cand[i];
          eq += cand[j] == cand[i];
        }
        if (gt < want && want <= gt + eq) return RowThreshold{cand[i], want - gt};
      }
    }
    const int fit = n < 4 ? 3 : 65 - __builtin_clzll(uint64_t(n));  // bins ~ 2n, at least 8
    const int digit = fit < kDigit ? fit : kDigit;
    const int width = span_bits < digit ? span_bits : digit, sh = span_bits - width;
    const uint32_t nb = 1u << width;
    std::memset(hist, 0, sizeof(uint32_t) * nb);
    for (int64_t i = 0; i < n; ++i) hist[(cand[i] - base) >> sh]++;
    int64_t above = 0;
    uint32_t b = nb - 1;
    for (; above + hist[b] < want; --b) above += hist[b];
    want -= above;
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {  // branch-free: candidates are a random subset
      cand[m] = cand[i];
      m += ((cand[i] - base) >> sh) == b;
    }
    n = m;
    base += b << sh;
    span_bits = sh;
  }
}

// Top-digit bins [lo, hi] that, judging from every 4th key, hold the k-th largest key of the row.
// The margin (3 standard deviations of the sampled rank, plus slack) makes a miss rare; callers
// verify the bracket with one exact pass and fall back to the full histogram when it misses.
struct BinBracket {
  uint32_t lo, hi;
};
constexpr int64_t kSampleStride = 4;
constexpr int64_t kMinSampledRow = 1024, kMaxSampledRow = int64_t(65535) * kSampleStride;

inline BinBracket guess_bins(const uint32_t* keys, int64_t d, int64_t k) {
  // Four interleaved 16-bit histograms: sampled keys crowd into a few bins, and one histogram
  // would serialise on store-to-load forwarding. (Callers keep d / kSampleStride below 2^16.)
  uint16_t hist[4][kTopBins];
  std::memset(hist, 0, sizeof(hist));
  const int64_t s = (d + kSampleStride - 1) / kSampleStride;
  int64_t i = 0;
  uint32_t top = 0;
  for (; i + 4 * kSampleStride <= d; i += 4 * kSampleStride) {
    const uint32_t b0 = keys[i] >> kTopShift, b1 = keys[i + kSampleStride] >> kTopShift,
                   b2 = keys[i + 2 * kSampleStride] >> kTopShift, b3 = keys[i + 3 * kSampleStride] >> kTopShift;
    hist[0][b0]++;
    hist[1][b1]++;
    hist[2][b2]++;
    hist[3][b3]++;
    const uint32_t m01 = b0 > b1 ? b0 : b1, m23 = b2 > b3 ? b2 : b3, m = m01 > m23 ? m01 : m23;
    top = m > top ? m : top;
  }
  for (; i < d; i += kSampleStride) {
    const uint32_t b = keys[i] >> kTopShift;
    hist[0][b]++;
    top = b > top ? b : top;
  }
  const double want = double(k) * double(s) / double(d), p = double(k) / double(d);
  const double margin = 3.0 * __builtin_sqrt(double(s) * p * (1.0 - p)) + 2.0;
  const double want_hi = want - margin, want_lo = want + margin;
  BinBracket r{0, top};
  int64_t cum = 0;
  bool hi_set = false;
  for (uint32_t b = top;; --b) {
    cum += hist[0][b] + hist[1][b] + hist[2][b] + hist[3][b];
    if (!hi_set && double(cum) >= want_hi) {
      r.hi = b;
      hi_set = true;
    }
    if (double(cum) >= want_lo || b == 0) {
      r.lo = b;
      return r;
    }
  }
}

// Keys in [lo, hi): a bracket of top-digit bins (keys_of), or the narrow one a fused scoring pass
// packs around a similar row's threshold (range_near, score_select), finer than bracket_near's
// bins: fewer candidates for select_among, at the price of more misses (then the usual search runs
// on the stored keys).
struct KeyRange {
  uint32_t lo, hi;
};

// The keys of top-digit bins lo..hi ((hi + 1) << kTopShift <= 2^31: keys are below).
inline KeyRange keys_of(BinBracket r) { return KeyRange{r.lo << kTopShift, (r.hi + 1) << kTopShift}; }
// The hint's step and one step either side (keys are < 2^31, so hi is clamped there).
inline KeyRange range_near(uint32_t hint, int shift) {
  const uint32_t b = hint >> shift;
  const uint64_t hi = uint64_t(b + 2) << shift;
  return KeyRange{b > 0 ? (b - 1) << shift : 0u, uint32_t(hi < 0x80000000ull ? hi : 0x80000000ull)};
}

// The keys of a range are r.lo + [0, 2^span_bits(r)).
inline int span_bits(KeyRange r) {
  const uint32_t span = r.hi - r.lo;
  return span <= 1 ? 0 : 32 - __builtin_clz(span - 1);
}

// select_among of the n keys of a range (1 <= want <= n).
inline RowThreshold select_in_range(uint32_t* cand, int64_t n, int64_t want, KeyRange r) {
  return select_among(cand, n, want, r.lo, span_bits(r));
}

// select_among of the keys in bins lo..hi.
inline RowThreshold select_in_bins(uint32_t* cand, int64_t n, int64_t want, BinBracket r) {
  return select_in_range(cand, n, want, keys_of(r));
}

// Top-digit bins around the threshold `hint` of a similar row: one bin (1/8 octave) either side.
inline BinBracket bracket_near(uint32_t hint) {
  const uint32_t b = hint >> kTopShift;
  return BinBracket{b > 0 ? b - 1 : 0, b + 1 < kTopBins ? b + 1 : kTopBins - 1};
}

// Threshold from a bracket of bins when one holds the k-th largest key: first around `hint`, then
// around the sampled guess. `pass(keys, d, bracket, scratch, &above)` packs the bracket's keys
// into scratch and returns their count; `select(scratch, n, want, range)` is select_in_range or an
// ISA's own form of it. False: the caller runs the exact histogram instead.
template <class BracketPass, class Select>
inline bool select_bracketed(const uint32_t* keys, int64_t d, int64_t k, uint32_t hint,
                             uint32_t* scratch, BracketPass pass, Select select, RowThreshold* th) {
  if (d < kMinSampledRow || d > kMaxSampledRow) return false;
  auto attempt = [&](BinBracket r) {
    int64_t above = 0;
    const int64_t n = pass(keys, d, r, scratch, &above);
    if (above >= k || k > above + n) return false;
    *th = select(scratch, n, k - above, keys_of(r));
    return true;
  };
  return (hint != kNoHint && attempt(bracket_near(hint))) || attempt(guess_bins(keys, d, k));
}

// Exact k-th largest of non-negative fp32 keys: one histogram of the top 11 bits over the row,
// then select_among on the (usually few) keys in the chosen bin. No sort.
inline RowThreshold radix_select_scalar(const uint32_t* keys, int64_t d, int64_t k,
                                        uint32_t* scratch) {
  uint32_t hist[kTopBins];
  std::memset(hist, 0, sizeof(hist));
  for (int64_t i = 0; i < d; ++i) hist[keys[i] >> kTopShift]++;
  int64_t above = 0;
  const uint32_t b = scan_top_bins(hist, 1, kTopBins - 1, k, &above);
  int64_t m = 0;
  for (int64_t i = 0; i < d; ++i)
    if ((keys[i] >> kTopShift) == b) scratch[m++] = keys[i];
  return select_in_bins(scratch, m, k - above, BinBracket{b, b});
}

}  // namespace
}  // namespace mumoe::cpu
