#include "nm.h"

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

}  // namespace mumoe
