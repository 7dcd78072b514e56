// Standalone check of one CPU kernel table against the scalar one (no torch). The NEON table runs
// under qemu from an x86 machine: tools/test_neon.sh (in CI).
// Natively for x86 tables: compile csrc/cpu/avx512/*.cpp (or avx2/) to objects with that folder's
// -m flags (CMakeLists.txt), then g++ -std=c++20 -O2 -DMUMOE_HAVE_avx512 -DTABLE=kAvx512Kernels
// -I csrc this file csrc/cpu/scalar/*.cpp csrc/cpu/cpu_features.cpp the objects.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/scalar_helpers.h"

using namespace mumoe::cpu;

namespace {

uint64_t rng_state = 88172645463325252ull;
uint32_t rnd() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return uint32_t(rng_state >> 16);
}
float frand() { return float(rnd() % 1000000) / 1000000.0f; }

int failures = 0;
void fail(const char* what, int dt, int64_t d, int kind) {
  if (++failures < 20) std::printf("FAIL %s dtype=%d d=%lld kind=%d\n", what, dt, (long long)d, kind);
}

// A weight row of `kind`: 0 random, 1 few distinct values, 2 all equal, 3 zeros, 4 -0.0 / 0 mix,
// 5 values of 4 significant bits over three octaves, so that (with unit norms) every key sits on a
// top-digit bin's first key: the edges of every bracket and near range are keys of the row.
void make_row(DType dt, int kind, int64_t d, std::vector<uint8_t>& w) {
  const int es = dt == DType::f32 ? 4 : 2;
  w.assign(es * d, 0);
  for (int64_t j = 0; j < d; ++j) {
    uint32_t f32bits;
    float v = 0.0f;
    switch (kind) {
      case 0: v = (frand() - 0.5f) * 8.0f; break;
      case 1: v = float(int(rnd() % 7) - 3) * 0.5f; break;
      case 2: v = 1.0f; break;
      case 3: v = 0.0f; break;
      case 5: v = std::ldexp(float(8 + rnd() % 8), int(rnd() % 3) - 4) * (rnd() & 1 ? 1.0f : -1.0f); break;
      default: v = (j % 2) ? -0.0f : (frand() - 0.5f); break;
    }
    std::memcpy(&f32bits, &v, 4);
    if (dt == DType::f32) {
      std::memcpy(&w[4 * j], &f32bits, 4);
    } else if (dt == DType::bf16) {
      const uint16_t h = uint16_t(f32bits >> 16);
      std::memcpy(&w[2 * j], &h, 2);
    } else {  // f16 by truncation (all values here are small and normal or zero)
      const uint32_t sign = (f32bits >> 16) & 0x8000u;
      const int exp = int((f32bits >> 23) & 0xff) - 127 + 15;
      uint16_t h = uint16_t(sign);
      if ((f32bits & 0x7fffffffu) != 0 && exp > 0) h |= uint16_t(exp << 10 | ((f32bits >> 13) & 0x3ffu));
      std::memcpy(&w[2 * j], &h, 2);
    }
  }
}

bool close(float a, float b) { return std::fabs(a - b) <= 1e-3f * (1.0f + std::fabs(b)); }

// The 16-bit float nearest to v (ties to the even pattern), by binary search over the positive
// patterns, which order like their values: an expectation independent of the kernels' rounding.
uint16_t nearest16(float v, DType dt) {
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(double(v));
  auto value = [&](uint32_t h) { return double(dt == DType::f16 ? f16_to_float(uint16_t(h)) : bf16_to_float(uint16_t(h))); };
  uint32_t lo = 0, hi = dt == DType::f16 ? 0x7c00 : 0x7f80;  // value(lo) <= a < value(hi)
  while (hi - lo > 1) {
    const uint32_t mid = (lo + hi) / 2;
    (value(mid) <= a ? lo : hi) = mid;
  }
  const double below = a - value(lo), above = value(hi) - a;
  const uint32_t h = below < above ? lo : above < below ? hi : (lo % 2 == 0 ? lo : hi);
  return uint16_t(sign | h);
}

// add_cols on a block of 3 rows x n columns of a wider output (ld = n + 5): against the scalar
// kernel bit for bit, against fp32 sums rounded by nearest16, and nothing outside the block touched.
void check_add_cols(const CpuKernels& K, const CpuKernels& S, DType dt, const std::vector<uint8_t>& w,
                    int64_t n, int kind) {
  const int es = dt == DType::f32 ? 4 : 2;
  const int64_t T = 3, ld = n + 5;
  std::vector<uint8_t> y(es * T * ld);
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(&y[es * t * ld], w.data(), es * n);
    std::memset(&y[es * (t * ld + n)], 0x3c, es * 5);
  }
  std::vector<float> add(n);
  // Multiples of 2^-9 and 2^-11 make ties (bf16 at 1.0: ulp 2^-7; f16: 2^-10), as row kind 2 has.
  for (int64_t i = 0; i < n; ++i)
    add[i] = i % 7 == 6 ? (frand() - 0.5f) * 1e-6f  // f16 subnormals where the row is zero
           : i % 5 == 2 ? float(int(rnd() % 9) - 4) * 0x1p-9f
           : i % 5 == 3 ? float(int(rnd() % 9) - 4) * 0x1p-11f
                        : (frand() - 0.5f) * (i % 5 == 0 ? 1e-3f : 4.0f);
  if (n > 9) add[9] = std::nanf("");  // NaN stays NaN (its payload may differ between kernels)
  std::vector<uint8_t> got = y, got_s = y;
  K.add_cols(got.data(), dt, T, n, ld, add.data());
  S.add_cols(got_s.data(), dt, T, n, ld, add.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < ld; ++i) {
      const int64_t at = t * ld + i;
      const bool nan = i == 9 && n > 9;
      if (nan != std::isnan(load_as_float(got.data(), dt, at)) || nan != std::isnan(load_as_float(got_s.data(), dt, at)) ||
          (!nan && std::memcmp(&got[es * at], &got_s[es * at], es) != 0)) {
        fail("add_cols", int(dt), n, kind);
        return;
      }
      if (nan) continue;
      bool ok;
      if (i >= n) {
        ok = std::memcmp(&got_s[es * at], &y[es * at], es) == 0;
      } else if (dt == DType::f32) {
        float g;
        std::memcpy(&g, &got_s[4 * at], 4);
        ok = g == load_as_float(y.data(), dt, at) + add[i];
      } else {
        uint16_t g;
        std::memcpy(&g, &got_s[2 * at], 2);
        ok = g == nearest16(load_as_float(y.data(), dt, at) + add[i], dt);
      }
      if (!ok) { fail(i >= n ? "add_cols (outside the block)" : "add_cols rounding", int(dt), n, kind); return; }
    }
}

void check_row(const CpuKernels& K, const CpuKernels& S, DType dt, int kind, int64_t d) {
  const int es = dt == DType::f32 ? 4 : 2;
  std::vector<uint8_t> w;
  make_row(dt, kind, d, w);
  std::vector<float> norms(d);
  for (int64_t j = 0; j < d; ++j) norms[j] = kind == 5 ? 1.0f : (kind == 4 && j % 3 == 0) ? 0.0f : frand() * 2.0f;
  std::vector<uint32_t> keys(d), keys_s(d), scratch(d + 16);
  K.row_scores(w.data(), dt, norms.data(), d, keys.data());
  S.row_scores(w.data(), dt, norms.data(), d, keys_s.data());
  if (keys != keys_s) fail("row_scores", int(dt), d, kind);
  uint32_t max_s = 0;
  for (uint32_t key : keys_s) max_s = key > max_s ? key : max_s;
  for (int64_t k : {int64_t(1), d / 5 + 1, d / 2 + 1, d - d / 5, d}) {
    if (k < 1 || k > d) continue;
    if (K.score_select) {  // every kind of hint: none, exact, near (inside the narrow range), off
      const RowThreshold exact = S.row_select(keys_s.data(), d, k, kNoHint, scratch.data());
      for (uint32_t hint : {kNoHint, exact.tau, exact.tau + (1u << 17), exact.tau - (exact.tau >> 6),
                            keys_s[rnd() % d], 0u, 0x7f000000u})
        for (int shift = kNearShiftMin; shift <= kNearShiftMax; ++shift) {
          std::vector<uint32_t> fk(d, 0x12345678);
          uint32_t mk = 0xdeadbeef;
          bool hit = false;
          const RowThreshold t = K.score_select(w.data(), dt, norms.data(), d, k, hint, shift, fk.data(),
                                                scratch.data(), &mk, &hit);
          const KeyRange r = range_near(hint, shift);
          int64_t above = 0, in = 0;  // the range holds the k-th largest key iff it hits
          for (uint32_t key : keys_s) above += key >= r.hi, in += key >= r.lo && key < r.hi;
          const bool want_hit = hint != kNoHint && above < k && k <= above + in;
          if (t.tau != exact.tau || t.ties_kept != exact.ties_kept || fk != keys_s || mk != max_s ||
              hit != want_hit)
            fail("score_select", int(dt), d, kind);
        }
    }
    // A random hint (right or wrong) must never change the result.
    const RowThreshold th = K.row_select(keys.data(), d, k, (rnd() & 1) ? kNoHint : keys[rnd() % d], scratch.data());
    const RowThreshold ts = S.row_select(keys.data(), d, k, kNoHint, scratch.data());
    if (th.tau != ts.tau || th.ties_kept != ts.ties_kept) { fail("row_select", int(dt), d, kind); continue; }
    std::vector<uint8_t> mask(d), mask_s(d), pruned(es * d), pruned_s(es * d);
    K.emit_mask(keys.data(), d, th, mask.data());
    S.emit_mask(keys.data(), d, ts, mask_s.data());
    if (mask != mask_s) fail("emit_mask", int(dt), d, kind);
    S.emit_pruned(w.data(), dt, keys.data(), d, ts, pruned_s.data(), false);
    for (bool streaming : {false, true}) {
      std::fill(pruned.begin(), pruned.end(), 0x77);
      K.emit_pruned(w.data(), dt, keys.data(), d, th, pruned.data(), streaming);
      if (pruned != pruned_s) fail("emit_pruned", int(dt), d, kind);
    }
    K.apply_mask(w.data(), dt, mask_s.data(), d, pruned.data());
    if (pruned != pruned_s) fail("apply_mask", int(dt), d, kind);
    const int64_t words = (d + 31) / 32;
    // Guard zones after the row's outputs catch writes past k values.
    std::vector<uint32_t> bm(words + 4, 0xdeadbeef), bm_s(words + 4, 0xdeadbeef);
    std::vector<uint8_t> vals(es * (k + 8), 0xab), vals_s(es * (k + 8), 0xab);
    K.emit_compact(w.data(), dt, keys.data(), d, th, k, bm.data(), vals.data());
    S.emit_compact(w.data(), dt, keys.data(), d, ts, k, bm_s.data(), vals_s.data());
    if (bm != bm_s || vals != vals_s) fail("emit_compact", int(dt), d, kind);
    std::vector<uint8_t> dense(es * d, 0x55);
    K.expand_compact(bm_s.data(), vals_s.data(), dt, d, k, dense.data());
    if (dense != pruned_s) fail("expand_compact", int(dt), d, kind);
    // pruned_dot: the dropped columns' w * v, against the scalar kernel and against the mask.
    std::vector<float> v(d);
    for (float& c : v) c = frand() - 0.5f;
    float want = 0.0f, scale = 1.0f;
    for (int64_t j = 0; j < d; ++j) {
      const float wj = load_as_float(w.data(), dt, j);
      if (!mask_s[j]) want += wj * v[j];
      scale += std::fabs(wj * v[j]);
    }
    const float got = K.pruned_dot(w.data(), dt, keys.data(), d, th, v.data());
    const float got_s = S.pruned_dot(w.data(), dt, keys.data(), d, ts, v.data());
    if (std::fabs(got - got_s) > 1e-5f * scale || std::fabs(got_s - want) > 1e-5f * scale)
      fail("pruned_dot", int(dt), d, kind);
    if (K.emit_pruned_compact) {  // the fused prefill outputs, without and with the dot
      for (const float* vv : {static_cast<const float*>(nullptr), static_cast<const float*>(v.data())}) {
        std::vector<uint8_t> p3(es * d, 0x77), vals3(es * (k + 8), 0xab);
        std::vector<uint32_t> bm3(words + 4, 0xdeadbeef);
        const float off = K.emit_pruned_compact(w.data(), dt, keys.data(), d, th, k, p3.data(), bm3.data(),
                                                vals3.data(), vv);
        const bool dot_ok = !vv || std::memcmp(&off, &got, 4) == 0;  // pruned_dot's bits
        if (p3 != pruned_s || bm3 != bm_s || vals3 != vals_s || !dot_ok)
          fail(vv ? "emit_pruned_compact (dot)" : "emit_pruned_compact", int(dt), d, kind);
      }
    }
    std::vector<uint32_t> bm2(words + 4, 0xdeadbeef);
    std::vector<uint8_t> vals2(es * (k + 8), 0xab);
    const float fused = K.emit_compact_dot(w.data(), dt, keys.data(), d, th, k, bm2.data(), vals2.data(), v.data());
    if (bm2 != bm_s || vals2 != vals_s || std::fabs(fused - want) > 1e-5f * scale)
      fail("emit_compact_dot", int(dt), d, kind);
    for (int64_t T = 1; T <= 8; ++T) {
      std::vector<float> x(T * d), out(T), out_s(T), out2(T);
      std::vector<uint16_t> xb(T * d);  // tokens have the weights' dtype (sparse_linear requires it)
      for (int64_t i = 0; i < T * d; ++i) {
        // The bf16 bits first and the float from them: GCC 12.2 at -O2 miscompiled the float ->
        // bits -> masked float round trip this loop used to do (docs/reliability.md).
        const float r = frand() - 0.5f;
        if (dt != DType::bf16) { x[i] = r; continue; }
        xb[i] = uint16_t(float_to_bits(r) >> 16);
        x[i] = bf16_to_float(xb[i]);
      }
      K.masked_dot(x.data(), T, w.data(), dt, mask_s.data(), d, out.data());
      S.masked_dot(x.data(), T, w.data(), dt, mask_s.data(), d, out_s.data());
      K.sparse_dot(x.data(), T, bm_s.data(), vals_s.data(), dt, d, k, out2.data());
      for (int64_t t = 0; t < T; ++t) {
        if (!close(out[t], out_s[t])) fail("masked_dot", int(dt), d, kind);
        if (!close(out2[t], out_s[t])) fail("sparse_dot", int(dt), d, kind);
      }
      if (dt == DType::bf16 && K.sparse_dot_bf16) {
        K.sparse_dot_bf16(xb.data(), T, bm_s.data(), reinterpret_cast<const uint16_t*>(vals_s.data()),
                          d, k, out2.data());
        for (int64_t t = 0; t < T; ++t)
          if (!close(out2[t], out_s[t])) fail("sparse_dot_bf16", int(dt), d, kind);
      }
    }
  }
  // col_sumsq over a few token rows of this row's values, with one token masked out.
  const int64_t T = 5;
  std::vector<uint8_t> xs(es * T * d);
  for (int64_t t = 0; t < T; ++t) std::memcpy(&xs[es * t * d], w.data(), es * d);
  const uint8_t keep[T] = {1, 0, 1, 1, 1};
  std::vector<float> center(d);
  for (float& c : center) c = frand() - 0.5f;
  for (const float* c : {static_cast<const float*>(nullptr), static_cast<const float*>(center.data())}) {
    std::vector<float> ss(d, 0.0f), ss_s(d, 0.0f);
    K.col_sumsq(xs.data(), dt, T, d, d, keep, c, ss.data());
    S.col_sumsq(xs.data(), dt, T, d, d, keep, c, ss_s.data());
    for (int64_t j = 0; j < d; ++j)
      if (!close(ss[j], ss_s[j])) { fail(c ? "col_sumsq centered" : "col_sumsq", int(dt), d, kind); break; }
  }
  check_add_cols(K, S, dt, w, d, kind);
  std::vector<float> sum(d, 0.0f), sum_s(d, 0.0f);
  K.col_sum(xs.data(), dt, T, d, d, keep, sum.data());
  S.col_sum(xs.data(), dt, T, d, d, keep, sum_s.data());
  for (int64_t j = 0; j < d; ++j)
    if (!close(sum[j], sum_s[j])) { fail("col_sum", int(dt), d, kind); break; }
}

}  // namespace

// The scalar fp32 -> bf16 / f16 rounding every table's add_cols tail uses, over magnitudes from
// f16 subnormals to its largest finite value, against nearest16.
void check_rounding() {
  for (int i = 0; i < 200000; ++i) {
    const float v = (rnd() & 1 ? -1.0f : 1.0f) * std::ldexp(1.0f + frand(), int(rnd() % 42) - 26);
    if (std::fabs(v) < 65504.0f && float_to_f16(v) != nearest16(v, DType::f16)) fail("float_to_f16", 1, i, 0);
    if (float_to_bf16(v) != nearest16(v, DType::bf16)) fail("float_to_bf16", 2, i, 0);
  }
  if (float_to_f16(70000.0f) != 0x7c00 || float_to_f16(-1e30f) != 0xfc00) fail("float_to_f16 overflow", 1, 0, 0);
  if ((float_to_f16(std::nanf("")) & 0x7e00) != 0x7e00 || (float_to_bf16(std::nanf("")) & 0x7fc0) != 0x7fc0)
    fail("NaN rounding", 0, 0, 0);
}

float bf16_value(uint16_t h) {
  const uint32_t b = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

// n uint16 that end exactly where an unreadable page begins: a vector load past the end faults
// (masked AVX-512 loads are not instrumented by ASan, so that is how a read past x is caught).
struct GuardedU16 {
  uint16_t* data;
  void* base;
  size_t bytes;
  explicit GuardedU16(size_t n) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE)), need = (2 * n + page - 1) / page * page;
    bytes = need + page;
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(static_cast<char*>(base) + need, page, PROT_NONE);
    data = reinterpret_cast<uint16_t*>(static_cast<char*>(base) + need - 2 * n);
  }
  ~GuardedU16() { munmap(base, bytes); }
};

// The AMX block GEMM against a double-precision product of the same bf16 inputs: within one bf16
// rounding of it (plus fp32 summation error), nothing written outside the T x n corner of y, and
// rows past n (NaN here) never reaching the outputs. Returns the number of cases checked.
int check_block_gemm(const CpuKernels& K) {
  if (!K.block_gemm) return 0;
  int cases = 0;
  for (int64_t T : {1, 15, 16, 17, 33, 64, 100})
    for (int64_t d : {1, 31, 32, 33, 96, 577})
      for (int64_t n : {1, 16, 17, 32, 45, 96})
        for (bool with_add : {false, true}) {
          ++cases;
          const int64_t ldw = (d + 31) / 32 * 32, n_pad = (n + 31) / 32 * 32, ldy = n + 5;
          GuardedU16 xg(T * d);
          uint16_t* x = xg.data;
          std::vector<uint16_t> w(n_pad * ldw, 0);
          for (int64_t i = 0; i < T * d; ++i) x[i] = float_to_bf16(frand() * 4.0f - 2.0f);
          for (int64_t j = 0; j < n_pad; ++j)
            for (int64_t i = 0; i < d; ++i) w[j * ldw + i] = j < n ? float_to_bf16(frand() * 2.0f - 1.0f) : 0x7fc0;
          std::vector<float> add(n);
          for (auto& a : add) a = frand() * 8.0f - 4.0f;
          std::vector<uint32_t> xt(K.packed_tokens_words(T, d), 0xffffffffu);
          const int64_t slabs = (T + 31) / 32;  // packed in two calls, as two threads would
          K.pack_tokens(x, T, d, xt.data(), slabs / 2, slabs);
          K.pack_tokens(x, T, d, xt.data(), 0, slabs / 2);
          const uint16_t sentinel = 0x1234;
          std::vector<uint16_t> y((T + 1) * ldy, sentinel);
          K.block_gemm(w.data(), n, ldw, d, xt.data(), T, y.data(), ldy, with_add ? add.data() : nullptr);
          bool ok = true;
          for (int64_t t = 0; t <= T && ok; ++t)
            for (int64_t j = 0; j < ldy && ok; ++j) {
              const uint16_t got = y[t * ldy + j];
              if (t == T || j >= n) { ok = got == sentinel; continue; }
              double ref = with_add ? add[j] : 0.0, mag = std::fabs(ref);
              for (int64_t i = 0; i < d; ++i) {
                const double p = double(bf16_value(x[t * d + i])) * bf16_value(w[j * ldw + i]);
                ref += p;
                mag += std::fabs(p);
              }
              const double err = std::fabs(double(bf16_value(got)) - ref);
              ok = std::isfinite(bf16_value(got)) && err <= std::fabs(ref) / 128.0 + mag * 1e-6;
            }
          if (!ok) fail(with_add ? "block_gemm (add)" : "block_gemm", 2, d, int(T * 1000 + n));
        }
  return cases;
}

int main() {
  const CpuKernels& K = TABLE;
  const CpuKernels& S = kScalarKernels;
  check_rounding();
  int rows = 0;
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (int64_t d : {1, 3, 7, 16, 33, 37, 100, 1000, 1031, 4096})
      for (int kind = 0; kind < 6; ++kind)
        for (int rep = 0; rep < 2; ++rep, ++rows) check_row(K, S, dt, kind, d);
  const int gemms = check_block_gemm(K);
  std::printf("%s%s%s%s vs scalar: %d rows, %d block GEMMs, %d failures\n", K.isa,
              K.emit_variant ? " + emit " : "", K.emit_variant ? K.emit_variant : "",
              K.block_gemm ? " + AMX" : "", rows, gemms, failures);
  return failures != 0;
}
