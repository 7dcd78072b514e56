// Per-prompt N:M sparsity: the group-size argument `m` of the selection ops (0 = unstructured,
// else keep n = k*m/d_in of every m consecutive columns), its check, and the ATen composite the
// CUDA bindings use for it.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace mumoe {

inline void check_group(const char* op, int64_t d_in, int64_t k, int64_t m) {
  if (m == 0) return;
  TORCH_CHECK_VALUE(m >= 2 && d_in % m == 0, op, ": m=", m,
                    " (the N:M group size) must be >= 2 and divide d_in=", d_in);
  TORCH_CHECK_VALUE(k % (d_in / m) == 0 && k < d_in, op, ": k=", k, " is not n*d_in/m with 0 < n < m=",
                    m, " (d_in=", d_in, ")");
}

// Any device, from ATen ops: the N:M mask (B?, d_out, d_in) of weight under norms (d_in,)/(B, d_in).
at::Tensor nm_mask(const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m);
// The weight zeroed outside a mask, and a mask's RowSparse (bitmap, values) with k per row.
at::Tensor apply_mask(const at::Tensor& weight, const at::Tensor& mask);
std::tuple<at::Tensor, at::Tensor> compact_of_mask(const at::Tensor& weight, const at::Tensor& mask,
                                                   int64_t k);

}  // namespace mumoe
