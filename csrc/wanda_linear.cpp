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

// From ATen ops and one selection (wanda_mask): the centered norms of the fp32 tokens, then the
// mask, the masked weight and the offset (B?, d_out) it leaves.
struct CenteredSelection {
  at::Tensor mask, pruned, offset;
};

CenteredSelection centered_selection(const char* op, const at::Tensor& x, const at::Tensor& weight,
                                     int64_t k, double mean_shift,
                                     const std::optional<at::Tensor>& attention_mask, int64_t m) {
  check_wanda_linear_centered_args(x, weight, std::nullopt, k, mean_shift, m);
  check_group(op, weight.size(1), k, m);
  TORCH_CHECK_VALUE(!attention_mask || attention_mask->sizes() == x.sizes().slice(0, x.dim() - 1), op,
                    ": attention_mask must have shape ", x.sizes().slice(0, x.dim() - 1), ", got ",
                    attention_mask->sizes());
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor keep = attention_mask ? attention_mask->ne(0).to(at::kFloat)
                                         : at::ones(x.sizes().slice(0, x.dim() - 1), xf.options());
  const at::Tensor count = keep.sum(-1, /*keepdim=*/true).clamp_min(1.0);
  const at::Tensor center = (xf * keep.unsqueeze(-1)).sum(-2) / count * mean_shift;  // (B?, d)
  const at::Tensor norms = call_col_norms(xf - center.unsqueeze(-2), attention_mask);  // raises on NaN/Inf
  const at::Tensor mask = call_wanda_mask(weight, norms, k, m);
  const at::Tensor pruned = apply_mask(weight, mask);
  const at::Tensor dropped = weight.to(at::kFloat) - pruned.to(at::kFloat);  // (B?, d_out, d)
  return {mask, pruned, at::matmul(dropped, center.unsqueeze(-1)).squeeze(-1)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> wanda_linear_centered(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t k,
    double mean_shift, const std::optional<at::Tensor>& attention_mask, int64_t m, bool keep_compact) {
  check_wanda_linear_centered_args(x, weight, bias, k, mean_shift, m);
  auto [mask, pruned, offset] = centered_selection("wanda_linear_centered", x, weight, k, mean_shift,
                                                   attention_mask, m);
  const at::Tensor add = bias ? offset + *bias : offset;
  at::Tensor y = (dense_linear(x, pruned, std::nullopt).to(at::kFloat) +
                  (add.dim() == 2 ? add.unsqueeze(-2) : add)).to(x.scalar_type());
  if (!keep_compact)
    return {y, empty_compact(weight, at::kInt), empty_compact(weight, weight.scalar_type()), offset};
  auto [bitmap, values] = compact_of_mask(weight, mask, k);
  return {y, bitmap, values, offset};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prune_rows_centered(
    const at::Tensor& x, const at::Tensor& weight, int64_t k, double mean_shift,
    const std::optional<at::Tensor>& attention_mask, int64_t m) {
  auto [mask, pruned, offset] = centered_selection("prune_rows_centered", x, weight, k, mean_shift,
                                                   attention_mask, m);
  auto [bitmap, values] = compact_of_mask(weight, mask, k);
  return {bitmap, values, offset};
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CompositeExplicitAutograd, m) {
  m.impl("wanda_linear", &wanda_linear);
  m.impl("wanda_linear_compact", &wanda_linear_compact);
  m.impl("wanda_linear_centered", &wanda_linear_centered);
  m.impl("prune_rows_centered", &prune_rows_centered);
}

// The composite above as an op of its own namespace, so the CPU test suite checks the code the
// CUDA bindings run (there is no GPU in CI).
TORCH_LIBRARY_FRAGMENT(mumoe_testing, m) {
  m.def("centered_composite(Tensor x, Tensor weight, Tensor? bias, int k, float mean_shift, Tensor? attention_mask, int m=0, bool keep_compact=True) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("prune_rows_centered_composite(Tensor x, Tensor weight, int k, float mean_shift, Tensor? attention_mask, int m=0) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mumoe_testing, CompositeExplicitAutograd, m) {
  m.impl("centered_composite", &wanda_linear_centered);
  m.impl("prune_rows_centered_composite", &prune_rows_centered);
}

}  // namespace mumoe
