#include "cpu/col_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel_rows.h"
#include "cpu/row_selector.h"

namespace mumoe::cpu {

void col_moments(const at::Tensor& x, const uint8_t* keep, const float* center, bool square,
                 float* out) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), es = x.element_size();
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(x);
  constexpr int64_t kCols = 512;
  const int64_t nblk = (d + kCols - 1) / kCols;
  const char* xp = static_cast<const char*>(x.const_data_ptr());
  // Chunks of >= ~1M elements: a prompt's norms are far cheaper than waking a second thread.
  const int64_t blocks_per_chunk = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, T * kCols));
  parallel_rows(B * nblk, blocks_per_chunk, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const int64_t b = i / nblk, c0 = (i % nblk) * kCols, n = std::min(kCols, d - c0);
      const char* xb = xp + es * (b * T * d + c0);
      const uint8_t* kb = keep ? keep + b * T : nullptr;
      if (square) K.col_sumsq(xb, dt, T, n, d, kb, center ? center + b * d + c0 : nullptr, out + b * d + c0);
      else K.col_sum(xb, dt, T, n, d, kb, out + b * d + c0);
    }
  });
}

at::Tensor keep_bytes(const at::Tensor& x, const std::optional<at::Tensor>& attention_mask,
                      const char* op) {
  if (!attention_mask) return at::Tensor();
  TORCH_CHECK_VALUE(attention_mask->sizes() == x.sizes().slice(0, x.dim() - 1), op,
                    ": attention_mask must have shape ", x.sizes().slice(0, x.dim() - 1), ", got ",
                    attention_mask->sizes());
  return attention_mask->ne(0).to(at::kByte).contiguous();
}

void finish_norms(float* sums, int64_t n, const char* op) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    sums[i] = std::sqrt(sums[i]);
    finite &= std::isfinite(sums[i]);
  }
  TORCH_CHECK_VALUE(finite, op, ": x contains NaN or Inf (or values whose squares overflow float32)");
}

std::pair<at::Tensor, at::Tensor> centered_col_norms(const at::Tensor& x, const at::Tensor& keep,
                                                     double mean_shift, const char* op) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  const uint8_t* kp = keep.defined() ? keep.const_data_ptr<uint8_t>() : nullptr;
  at::Tensor center = at::zeros({B, d}, x.options().dtype(at::kFloat));
  at::Tensor norms = at::zeros({B, d}, x.options().dtype(at::kFloat));
  float* cp = center.mutable_data_ptr<float>();
  col_moments(x, kp, nullptr, /*square=*/false, cp);
  for (int64_t b = 0; b < B; ++b) {
    int64_t count = T;
    if (kp) count = std::count_if(kp + b * T, kp + (b + 1) * T, [](uint8_t v) { return v != 0; });
    const float scale = float(mean_shift / double(std::max<int64_t>(count, 1)));
    for (int64_t j = 0; j < d; ++j) cp[b * d + j] *= scale;
  }
  col_moments(x, kp, cp, /*square=*/true, norms.mutable_data_ptr<float>());
  // A NaN/Inf in x makes its column's center non-finite, and with it the norm checked here.
  finish_norms(norms.mutable_data_ptr<float>(), B * d, op);
  return {norms, center};
}

}  // namespace mumoe::cpu
