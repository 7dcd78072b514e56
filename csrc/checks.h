// Argument checks shared by the device bindings. Messages start with the op name and name the
// argument; the Python wrappers check first, these guard direct torch.ops.mumoe.* callers.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace mumoe {

inline void check_float_tensor(const char* op, const char* name, const at::Tensor& t) {
  const auto s = t.scalar_type();
  TORCH_CHECK_TYPE(s == at::kFloat || s == at::kHalf || s == at::kBFloat16, op, ": ", name,
                   " must be float32, float16 or bfloat16, got ", s);
  TORCH_CHECK_VALUE(t.numel() > 0, op, ": ", name, " must not be empty");
}

inline void check_same_device(const char* op, const at::Tensor& a, const char* an,
                              const at::Tensor& b, const char* bn) {
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": ", bn, " is on ", b.device(), " but ", an,
                    " is on ", a.device());
}

inline void check_weight_norms_k(const char* op, const at::Tensor& weight, const at::Tensor& norms,
                                 int64_t k) {
  check_float_tensor(op, "weight", weight);
  TORCH_CHECK_VALUE(weight.dim() == 2, op, ": weight must be (d_out, d_in), got ", weight.sizes());
  check_same_device(op, weight, "weight", norms, "norms");
  TORCH_CHECK_TYPE(norms.scalar_type() == at::kFloat, op, ": norms must be float32, got ",
                   norms.scalar_type());
  TORCH_CHECK_VALUE((norms.dim() == 1 || norms.dim() == 2) && norms.size(-1) == weight.size(1), op,
                    ": norms must be (d_in,) or (B, d_in) with the weight's d_in=", weight.size(1), ", got ",
                    norms.sizes());
  TORCH_CHECK_VALUE(k >= 1 && k <= weight.size(1), op, ": k must be in [1, d_in=", weight.size(1),
                    "], got ", k);
}

inline void check_bias(const char* op, const at::Tensor& x, const std::optional<at::Tensor>& bias,
                       int64_t d_out) {
  if (!bias) return;
  check_same_device(op, x, "x", *bias, "bias");
  TORCH_CHECK_TYPE(bias->scalar_type() == x.scalar_type(), op, ": bias has dtype ",
                   bias->scalar_type(), " but x has dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == d_out, op, ": bias must have shape (",
                    d_out, ",), got ", bias->sizes());
}

inline void check_linear_args(const char* op, const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias) {
  check_float_tensor(op, "x", x);
  TORCH_CHECK_VALUE(x.dim() == 2 || x.dim() == 3, op, ": x must be (T, d_in) or (B, T, d_in), got ",
                    x.sizes());
  TORCH_CHECK_TYPE(x.scalar_type() == weight.scalar_type(), op, ": weight has dtype ",
                   weight.scalar_type(), " but x has dtype ", x.scalar_type());
  check_same_device(op, x, "x", weight, "weight");
  TORCH_CHECK_VALUE(x.size(-1) == weight.size(-1), op, ": x has d_in=", x.size(-1),
                    " but weight has d_in=", weight.size(-1));
  check_bias(op, x, bias, weight.size(-2));
}

// NaN/Inf activations (or squares overflowing fp32) show up as non-finite norms, and a negative
// norm is a caller's bug (scores use |n|, so it would pass silently): refuse both. One flag is read
// back (a device sync on CUDA); the reason is worked out only on failure.
inline void check_norms_valid(const char* op, const at::Tensor& norms) {
  if (at::logical_and(at::isfinite(norms), norms.ge(0)).all().item<bool>()) return;
  TORCH_CHECK_VALUE(at::isfinite(norms).all().item<bool>(), op,
                    ": norms contain NaN or Inf (non-finite activations in x?)");
  TORCH_CHECK_VALUE(false, op, ": norms must be non-negative");
}

}  // namespace mumoe
