// Helpers shared by the CPU and CUDA bindings: output shapes, the vendor-GEMM fallback and the
// RowSparse, masked-linear and wanda_linear argument checks.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "checks.h"

namespace mumoe {

// (B?, tail...) for norms of one prompt (d_in,) or of B prompts (B, d_in).
inline std::vector<int64_t> batch_shape(const at::Tensor& norms, std::initializer_list<int64_t> tail) {
  std::vector<int64_t> s;
  if (norms.dim() == 2) s.push_back(norms.size(0));
  s.insert(s.end(), tail);
  return s;
}

// x @ w.T + bias for one weight (d_out, d_in) or one per prompt (B, d_out, d_in).
inline at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias) {
  if (w.dim() == 2) return at::linear(x, w, bias);
  at::Tensor y = at::matmul(x, w.transpose(-1, -2));
  return bias ? y.add_(*bias) : y;
}

inline void check_per_sample(const char* op, const at::Tensor& x, const at::Tensor& w, const char* name) {
  if (w.dim() == 3)
    TORCH_CHECK_VALUE(x.dim() == 3 && x.size(0) == w.size(0), op, ": a batched ", name, " of ",
                      w.size(0), " prompts needs x of shape (B, T, d_in) with B = ", w.size(0),
                      ", got ", x.sizes());
}

inline void check_sparse_linear_args(const at::Tensor& x, const at::Tensor& bitmap,
                                     const at::Tensor& values, int64_t d_in,
                                     const std::optional<at::Tensor>& bias) {
  check_float_tensor("sparse_linear", "values", values);
  TORCH_CHECK_TYPE(bitmap.scalar_type() == at::kInt, "sparse_linear: bitmap must be int32, got ",
                   bitmap.scalar_type());
  const int64_t words = (d_in + 31) / 32;
  TORCH_CHECK_VALUE((values.dim() == 2 || values.dim() == 3) && bitmap.dim() == values.dim() &&
                        bitmap.sizes().slice(0, bitmap.dim() - 1) ==
                            values.sizes().slice(0, values.dim() - 1) &&
                        bitmap.size(-1) == words && values.size(-1) <= d_in,
                    "sparse_linear: bitmap ", bitmap.sizes(), " and values ", values.sizes(),
                    " do not describe a RowSparse with d_in=", d_in);
  check_float_tensor("sparse_linear", "x", x);
  TORCH_CHECK_VALUE(x.dim() == 2 || x.dim() == 3,
                    "sparse_linear: x must be (T, d_in) or (B, T, d_in), got ", x.sizes());
  TORCH_CHECK_TYPE(x.scalar_type() == values.scalar_type(), "sparse_linear: the RowSparse has dtype ",
                   values.scalar_type(), " but x has dtype ", x.scalar_type());
  check_same_device("sparse_linear", x, "x", values, "values");
  check_same_device("sparse_linear", x, "x", bitmap, "bitmap");
  TORCH_CHECK_VALUE(x.size(-1) == d_in, "sparse_linear: x has d_in=", x.size(-1),
                    " but the RowSparse has d_in=", d_in);
  check_bias("sparse_linear", x, bias, values.size(-2));
  check_per_sample("sparse_linear", x, values, "RowSparse");
}

inline void check_masked_linear_args(const at::Tensor& x, const at::Tensor& weight,
                                     const at::Tensor& mask, const std::optional<at::Tensor>& bias) {
  check_float_tensor("masked_linear", "weight", weight);
  TORCH_CHECK_VALUE(weight.dim() == 2, "masked_linear: weight must be (d_out, d_in)");
  check_linear_args("masked_linear", x, weight, bias);
  TORCH_CHECK_TYPE(mask.scalar_type() == at::kBool, "masked_linear: mask must be bool, got ",
                   mask.scalar_type());
  TORCH_CHECK_VALUE((mask.dim() == 2 || mask.dim() == 3) &&
                        mask.sizes().slice(mask.dim() - 2) == weight.sizes(),
                    "masked_linear: mask must be ", weight.sizes(), " or (B, ", weight.size(0), ", ",
                    weight.size(1), "), got ", mask.sizes());
  check_same_device("masked_linear", x, "x", mask, "mask");
  check_per_sample("masked_linear", x, mask, "mask");
}

inline void check_wanda_linear_args(const at::Tensor& x, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, int64_t k) {
  check_float_tensor("wanda_linear", "weight", weight);
  TORCH_CHECK_VALUE(weight.dim() == 2, "wanda_linear: weight must be (d_out, d_in), got ",
                    weight.sizes());
  check_linear_args("wanda_linear", x, weight, bias);
  TORCH_CHECK_VALUE(k >= 1 && k <= weight.size(1), "wanda_linear: k must be in [1, d_in=",
                    weight.size(1), "], got ", k);
}

inline void check_wanda_linear_centered_args(const at::Tensor& x, const at::Tensor& weight,
                                             const std::optional<at::Tensor>& bias, int64_t k,
                                             double mean_shift, int64_t m) {
  check_wanda_linear_args(x, weight, bias, k);
  TORCH_CHECK_VALUE(mean_shift >= 0.0 && mean_shift <= 1.0,
                    "wanda_linear_centered: mean_shift must be in [0, 1], got ", mean_shift);
}

// The (0,) placeholder wanda_linear_centered returns for the compact weight it was not asked to keep.
inline at::Tensor empty_compact(const at::Tensor& weight, at::ScalarType dtype) {
  return at::empty({0}, weight.options().dtype(dtype));
}

}  // namespace mumoe
