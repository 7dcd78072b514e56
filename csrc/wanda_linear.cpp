// The fused µ-MoE linear, composed from the device ops through the dispatcher: per-prompt norms,
// one selection, vendor GEMM. CUDA uses these definitions; the CPU has its own
// (cpu/wanda_linear_cpu.cpp), which the dispatcher prefers to these composite ones.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "op_calls.h"
#include "op_common.h"
#include "nm.h"

namespace mumoe {
namespace {

at::Tensor wanda_linear(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, int64_t k,
                        const std::optional<at::Tensor>& attention_mask, int64_t m) {
  check_wanda_linear_args(x, weight, bias, k);
  check_group("wanda_linear", weight.size(1), k, m);
  const at::Tensor norms = call_col_norms(x, attention_mask);  // raises on NaN/Inf activations
  if (k == weight.size(1)) return at::linear(x, weight, bias);
  const at::Tensor pruned = call_wanda_prune_unchecked(weight, norms, k, m);
  if (pruned.dim() == 2) return at::linear(x, pruned, bias);
  if (bias) return at::baddbmm(bias->expand({x.size(0), x.size(1), weight.size(0)}), x, pruned.transpose(1, 2));
  return at::bmm(x, pruned.transpose(1, 2));
}

// One selection (prune_rows), then the product from the compact weight (sparse_linear expands it
// for a GEMM when T is large).
std::tuple<at::Tensor, at::Tensor, at::Tensor> wanda_linear_compact(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t k,
    const std::optional<at::Tensor>& attention_mask, int64_t m) {
  check_wanda_linear_args(x, weight, bias, k);
  check_group("wanda_linear_compact", weight.size(1), k, m);
  const at::Tensor norms = call_col_norms(x, attention_mask);
  auto [bitmap, values] = call_prune_rows(weight, norms, k, m);
  at::Tensor y = k == weight.size(1) ? at::linear(x, weight, bias)
                                     : call_sparse_linear(x, bitmap, values, weight.size(1), bias);
  return {y, bitmap, values};
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CompositeExplicitAutograd, m) {
  m.impl("wanda_linear", &wanda_linear);
  m.impl("wanda_linear_compact", &wanda_linear_compact);
}

}  // namespace mumoe
