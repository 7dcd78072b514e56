// The fused µ-MoE linear, composed from the device ops through the dispatcher so one definition
// serves CPU and CUDA: per-prompt norms, the pruned weight written by the selection, vendor GEMM.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "checks.h"

namespace mumoe {
namespace {

at::Tensor call_col_norms(const at::Tensor& x, const std::optional<at::Tensor>& am) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::col_norms", "")
                       .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&)>();
  return op.call(x, am);
}

// col_norms has already refused non-finite norms, and they are non-negative by construction.
at::Tensor call_wanda_prune_unchecked(const at::Tensor& w, const at::Tensor& norms, int64_t k) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::wanda_prune", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool)>();
  return op.call(w, norms, k, false);
}

at::Tensor wanda_linear(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, int64_t k,
                        const std::optional<at::Tensor>& attention_mask) {
  check_float_tensor("wanda_linear", "weight", weight);
  TORCH_CHECK_VALUE(weight.dim() == 2, "wanda_linear: weight must be (d_out, d_in), got ",
                    weight.sizes());
  check_linear_args("wanda_linear", x, weight, bias);
  TORCH_CHECK_VALUE(k >= 1 && k <= weight.size(1), "wanda_linear: k must be in [1, d_in=",
                    weight.size(1), "], got ", k);
  const at::Tensor norms = call_col_norms(x, attention_mask);  // raises on NaN/Inf activations
  if (k == weight.size(1)) return at::linear(x, weight, bias);
  const at::Tensor pruned = call_wanda_prune_unchecked(weight, norms, k);
  if (pruned.dim() == 2) return at::linear(x, pruned, bias);
  if (bias) return at::baddbmm(bias->expand({x.size(0), x.size(1), weight.size(0)}), x, pruned.transpose(1, 2));
  return at::bmm(x, pruned.transpose(1, 2));
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CompositeExplicitAutograd, m) { m.impl("wanda_linear", &wanda_linear); }

}  // namespace mumoe
