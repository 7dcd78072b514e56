// The fused µ-MoE linear, composed from the device ops through the dispatcher: per-prompt norms,
// the pruned weight written by the selection, vendor GEMM. CUDA uses this definition; the CPU has
// its own (cpu/wanda_linear_cpu.cpp), which the dispatcher prefers to this composite one.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "op_calls.h"
#include "op_common.h"

namespace mumoe {
namespace {

at::Tensor wanda_linear(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, int64_t k,
                        const std::optional<at::Tensor>& attention_mask) {
  check_wanda_linear_args(x, weight, bias, k);
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
