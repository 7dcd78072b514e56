// Runs the real kernel code of csrc/cuda (through emu.h) against straightforward host references.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>

#include "cuda/common.cuh"

using namespace mumoe::cuda;
static std::mt19937 rng(0);
static int failures = 0;
#define CHECK(c, ...)                      \
  do {                                     \
    if (!(c)) {                            \
      ++failures;                          \
      std::printf("FAIL %s: ", #c);        \
      std::printf(__VA_ARGS__);            \
      std::printf("\n");                   \
      if (failures > 20) std::exit(1);     \
    }                                      \
  } while (0)

template <class S> S from_f(float v);
template <> float from_f<float>(float v) { return v; }
template <> __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
float as_f(float v) { return v; }
float as_f(__half v) { return __half2float(v); }
float as_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class S> DType dt_of();
template <> DType dt_of<float>() { return DType::f32; }
template <> DType dt_of<__half>() { return DType::f16; }
template <> DType dt_of<__nv_bfloat16>() { return DType::bf16; }

std::vector<float> randn(size_t n, int kind = 0) {
  std::normal_distribution<float> N;
  std::vector<float> v(n);
  for (auto& x : v) {
    x = N(rng);
    if (kind == 1) x = std::round(x * 2) / 2;  // quantized: many ties
    if (kind == 2) x = 0.5f;
    if (kind == 3 && rng() % 2) x = -0.0f;
  }
  return v;
}

template <class S>
void test_select(int B, int d_out, int d, double density, int kind) {
  const int k = d - int(std::floor(d * (1 - density)));
  if (k < 1) return;
  auto wf = randn(size_t(d_out) * d, kind);
  std::vector<S> w(wf.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = from_f<S>(wf[i]);
  auto nf = randn(size_t(B) * d);
  for (auto& x : nf) x = std::fabs(x);
  if (kind == 4) for (auto& x : nf) if (rng() % 2) x = 0.f;
  if (kind == 2) for (auto& x : nf) x = 1.f;
  const int words = (d + 31) / 32;
  std::vector<uint8_t> mask(size_t(B) * d_out * d, 7);
  std::vector<S> pruned(size_t(B) * d_out * d), vals(size_t(B) * d_out * k);
  std::vector<uint32_t> bitmap(size_t(B) * d_out * words, 0xdeadbeef);
  launch_select_rows(dt_of<S>(), Emit::mask, w.data(), nf.data(), B, d_out, d, k, mask.data(), nullptr, 0);
  launch_select_rows(dt_of<S>(), Emit::pruned, w.data(), nf.data(), B, d_out, d, k, pruned.data(), nullptr, 0);
  launch_select_rows(dt_of<S>(), Emit::compact, w.data(), nf.data(), B, d_out, d, k, vals.data(), bitmap.data(), 0);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < d_out; ++i) {
      std::vector<float> s(d);
      for (int j = 0; j < d; ++j) s[j] = std::fabs(as_f(w[size_t(i) * d + j])) * std::fabs(nf[size_t(b) * d + j]);
      std::vector<int> idx(d);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int c) { return s[a] > s[c]; });
      std::vector<uint8_t> ref(d, 0);
      for (int q = 0; q < k; ++q) ref[idx[q]] = 1;
      const size_t r = size_t(b) * d_out + i;
      int n = 0;
      for (int j = 0; j < d; ++j) {
        CHECK(mask[r * d + j] == ref[j], "mask B=%d d=%d k=%d row %zu col %d kind %d", B, d, k, r, j, kind);
        const float pv = as_f(pruned[r * d + j]);
        CHECK(pv == (ref[j] ? as_f(w[size_t(i) * d + j]) : 0.f) || (std::isnan(pv)), "pruned d=%d col %d", d, j);
        const bool bit = bitmap[r * words + j / 32] >> (j % 32) & 1u;
        CHECK(bit == bool(ref[j]), "bitmap d=%d k=%d col %d", d, k, j);
        if (ref[j]) {
          CHECK(as_f(vals[r * k + n]) == as_f(w[size_t(i) * d + j]), "values d=%d k=%d n=%d", d, k, n);
          ++n;
        }
      }
      for (int j = d; j < words * 32; ++j) CHECK(!(bitmap[r * words + j / 32] >> (j % 32) & 1u), "pad bit %d", j);
    }
}

template <class S>
double tol() { return sizeof(S) == 4 ? 1e-4 : 2e-2; }

// y = x (Bx,T,d) @ dense(rows)^T + bias, dense per sample if batched.
template <class S>
void ref_linear(const std::vector<S>& x, const std::vector<float>& dense, bool batched, const std::vector<S>& bias,
                int Bx, int T, int d_out, int d, std::vector<double>& y) {
  y.assign(size_t(Bx) * T * d_out, 0.0);
  for (int b = 0; b < Bx; ++b)
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < d_out; ++i) {
        double acc = bias.empty() ? 0.0 : as_f(bias[i]);
        const float* wr = dense.data() + (size_t(batched ? b : 0) * d_out + i) * d;
        for (int j = 0; j < d; ++j) acc += double(as_f(x[(size_t(b) * T + t) * d + j])) * wr[j];
        y[(size_t(b) * T + t) * d_out + i] = acc;
      }
}

template <class S>
void compare(const std::vector<S>& y, const std::vector<double>& ref, const char* what, int d, int T) {
  double scale = 1e-6;
  for (double v : ref) scale = std::max(scale, std::fabs(v));
  for (size_t q = 0; q < y.size(); ++q)
    CHECK(std::fabs(as_f(y[q]) - ref[q]) <= tol<S>() * scale, "%s d=%d T=%d idx %zu got %f want %f", what, d, T, q,
          as_f(y[q]), ref[q]);
}

template <class S>
void test_linear(int Bx, int T, int d_out, int d, double density, bool batched, bool with_bias, int offset) {
  const int k = d - int(std::floor(d * (1 - density)));
  const int Bw = batched ? Bx : 1;
  auto wf = randn(size_t(d_out) * d);
  std::vector<S> w(wf.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = from_f<S>(wf[i]);
  auto xf = randn(size_t(Bx) * T * d);
  std::vector<S> x_buf(xf.size() + 8);
  std::vector<S> x(xf.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = from_f<S>(xf[i]);
  S* xp = x_buf.data() + (offset & 1);  // odd offsets: unaligned x, scalar paths
  std::copy(x.begin(), x.end(), xp);
  std::vector<S> bias;
  if (with_bias) { auto bf = randn(d_out); for (float v : bf) bias.push_back(from_f<S>(v)); }
  auto nf = randn(size_t(Bw) * d);
  for (auto& v : nf) v = std::fabs(v);
  std::vector<uint8_t> mask(size_t(Bw) * d_out * d);
  launch_select_rows(dt_of<S>(), Emit::mask, w.data(), nf.data(), Bw, d_out, d, k, mask.data(), nullptr, 0);
  std::vector<float> dense(mask.size());
  for (size_t r = 0; r < size_t(Bw) * d_out; ++r)
    for (int j = 0; j < d; ++j) dense[r * d + j] = mask[r * d + j] ? as_f(w[(r % d_out) * d + j]) : 0.f;
  std::vector<double> ref;
  ref_linear(x, dense, batched, bias, Bx, T, d_out, d, ref);
  std::vector<S> y(ref.size());
  launch_masked_gemv(dt_of<S>(), xp, w.data(), reinterpret_cast<const bool*>(mask.data()), batched,
                     with_bias ? bias.data() : nullptr, y.data(), Bx, T, d_out, d, 0);
  compare(y, ref, "masked", d, T);
  // RowSparse from the selection; values placed at an element offset to exercise unaligned staging.
  const int words = (d + 31) / 32;
  std::vector<S> vals_buf(size_t(Bw) * d_out * k + 8);
  std::vector<uint32_t> bitmap(size_t(Bw) * d_out * words);
  S* vals = vals_buf.data() + offset;
  launch_select_rows(dt_of<S>(), Emit::compact, w.data(), nf.data(), Bw, d_out, d, k, vals, bitmap.data(), 0);
  for (int sms : {0, 132}) {
    emu::g_sms = sms;
    std::vector<S> ys(ref.size());
    launch_sparse_gemv(dt_of<S>(), xp, bitmap.data(), vals, batched, with_bias ? bias.data() : nullptr,
                       ys.data(), Bx, T, d_out, d, k, 0);
    compare(ys, ref, "sparse", d, T);
  }
  std::vector<S> ex(size_t(Bw) * d_out * d);
  launch_expand_rows(dt_of<S>(), bitmap.data(), vals, size_t(Bw) * d_out, d, k, ex.data(), 0);
  for (size_t q = 0; q < ex.size(); ++q) CHECK(as_f(ex[q]) == dense[q], "expand d=%d idx %zu", d, q);
}

template <class S>
void test_norms(int B, int T, int d) {
  auto xf = randn(size_t(B) * T * d);
  std::vector<S> x(xf.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = from_f<S>(xf[i]);
  std::vector<uint8_t> keep(size_t(B) * T);
  for (auto& v : keep) v = rng() % 3 != 0;
  std::vector<float> out(size_t(B) * d);
  launch_col_norms(dt_of<S>(), x.data(), keep.data(), out.data(), B, T, d, 0);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int t = 0; t < T; ++t)
        if (keep[size_t(b) * T + t]) { double v = as_f(x[(size_t(b) * T + t) * d + j]); s += v * v; }
      CHECK(std::fabs(out[size_t(b) * d + j] - std::sqrt(s)) <= 1e-5 * (1 + std::sqrt(s)), "norms d=%d j=%d", d, j);
    }
}

template <class S>
void run_all(const char* name) {
  std::printf("== %s\n", name);
  test_norms<S>(2, 37, 45);
  test_norms<S>(1, 3, 1);
  for (int optin : {227 * 1024, 0}) {
    emu::g_optin = optin;
    for (auto [o, d] : std::vector<std::pair<int, int>>{{1, 1}, {3, 7}, {2, 33}, {2, 300}, {1, 1000}})
      for (double rho : {0.01, 0.2, 0.5, 0.8, 1.0})
        for (int kind : {0, 1, 2, 3, 4}) test_select<S>(kind % 2 ? 2 : 1, o, d, rho, kind);
    std::printf("select optin=%d done, failures %d\n", optin, failures);
  }
  emu::g_optin = 227 * 1024;
  for (auto [d, T] : std::vector<std::pair<int, int>>{{7, 1}, {64, 3}, {1000, 1}, {1024, 8}, {3000, 2}, {5000, 1}})
    for (double rho : {0.01, 0.5, 1.0}) {
      test_linear<S>(1, T, 3, d, rho, false, true, 0);
      test_linear<S>(2, T, 2, d, rho, true, false, 1);
      test_linear<S>(2, T, 2, d, rho, false, true, 3);
    }
  std::printf("linear done, failures %d\n", failures);
}

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  run_all<float>("fp32");
  run_all<__half>("fp16");
  run_all<__nv_bfloat16>("bf16");
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "ALL OK", failures);
  return failures != 0;
}
