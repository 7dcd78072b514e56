// TORCH_LIBRARY_IMPL(mumoe, CUDA): argument checks, then the kernels of this folder on the current
// stream.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "cuda/common.cuh"

namespace mumoe::cuda {
namespace {

at::Tensor col_norms_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& attention_mask) {
  check_float_tensor("col_norms", "x", x_);
  TORCH_CHECK_VALUE(x_.dim() == 2 || x_.dim() == 3,
                    "col_norms: x must be (T, d_in) or (B, T, d_in), got ", x_.sizes());
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous();
  const bool batched = x.dim() == 3;
  const int64_t B = batched ? x.size(0) : 1, T = x.size(-2), d = x.size(-1);
  at::Tensor keep;
  if (attention_mask) {
    TORCH_CHECK_VALUE(attention_mask->sizes() == x.sizes().slice(0, x.dim() - 1),
                      "col_norms: attention_mask must have shape ", x.sizes().slice(0, x.dim() - 1),
                      ", got ", attention_mask->sizes());
    keep = attention_mask->ne(0).to(at::kByte).contiguous();
  }
  at::Tensor out = at::empty({B, d}, x.options().dtype(at::kFloat));
  launch_col_norms(x, keep, out, B, T, d);
  TORCH_CHECK_VALUE(at::isfinite(out).all().item<bool>(),
                    "col_norms: x contains NaN or Inf (or values whose squares overflow float32)");
  return batched ? out : out.squeeze(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CUDA, m) { m.impl("col_norms", &col_norms_cuda); }

}  // namespace mumoe::cuda
