#include "nm.h"

#include <torch/library.h>

namespace mumoe {

at::Tensor nm_mask(const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m) {
  const int64_t d = weight.size(1), n = k * m / d;
  at::Tensor scores = weight.abs().to(at::kFloat) * norms.to(at::kFloat).unsqueeze(-2);
  std::vector<int64_t> groups(scores.sizes().begin(), scores.sizes().end());
  groups.back() = d / m;
  groups.push_back(m);
  // Stable descending sort inside each group: its first n entries are the kept ones.
  const at::Tensor order = std::get<1>(scores.reshape(groups).sort(/*stable=*/true, -1, /*descending=*/true));
  at::Tensor keep = at::zeros(groups, weight.options().dtype(at::kBool));
  keep.scatter_(-1, order.narrow(-1, 0, n), true);
  return keep.reshape(scores.sizes());
}

at::Tensor apply_mask(const at::Tensor& weight, const at::Tensor& mask) {
  return at::where(mask, weight, at::zeros({}, weight.options()));
}

std::tuple<at::Tensor, at::Tensor> compact_of_mask(const at::Tensor& weight, const at::Tensor& mask,
                                                   int64_t k) {
  const int64_t d = mask.size(-1), words = (d + 31) / 32;
  std::vector<int64_t> lead(mask.sizes().begin(), mask.sizes().end() - 1);
  std::vector<int64_t> padded = lead, wshape = lead, vshape = lead;
  padded.push_back(words * 32);
  wshape.insert(wshape.end(), {words, 32});
  vshape.push_back(k);
  at::Tensor bits = at::zeros(padded, mask.options().dtype(at::kLong));
  bits.narrow(-1, 0, d).copy_(mask);
  const at::Tensor weights = at::pow(2, at::arange(32, mask.options().dtype(at::kLong)));
  // Bit j%32 of word j/32, as the int32 with that bit pattern.
  at::Tensor word = (bits.reshape(wshape) * weights).sum(-1);
  at::Tensor bitmap = at::where(word >= (int64_t(1) << 31), word - (int64_t(1) << 32), word).to(at::kInt);
  at::Tensor values = weight.expand(mask.sizes()).masked_select(mask).reshape(vshape);
  return {bitmap, values};
}

// The composite above as an op of its own namespace, so the CPU test suite checks the exact code
// the CUDA bindings run for N:M (there is no GPU in CI): (mask, pruned, bitmap, values).
namespace {
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> nm_composite(
    const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m) {
  check_group("nm_composite", weight.size(1), k, m);
  TORCH_CHECK_VALUE(m > 0, "nm_composite: m must be > 0, got ", m);
  at::Tensor mask = nm_mask(weight, norms, k, m);
  auto [bitmap, values] = compact_of_mask(weight, mask, k);
  return {mask, apply_mask(weight, mask), bitmap, values};
}
}  // namespace

TORCH_LIBRARY(mumoe_testing, m) {
  m.def("nm_composite(Tensor weight, Tensor norms, int k, int m) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mumoe_testing, CompositeExplicitAutograd, m) {
  m.impl("nm_composite", &nm_composite);
}

}  // namespace mumoe
