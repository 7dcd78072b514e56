// TORCH_LIBRARY_IMPL(mumoe, CUDA): the same argument checks and messages as the CPU bindings, then
// the kernels of this folder on the current stream (large-T products: masked/expanded weight + cuBLAS).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "nm.h"
#include "checks.h"
#include "op_common.h"
#include "cuda/common.cuh"

namespace mumoe::cuda {
namespace {

DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::f32;
    case at::kHalf: return DType::f16;
    default: return DType::bf16;
  }
}

// The kernels index rows and columns with 32-bit ints (with room for a loop stride past the end).
void check_int_range(const char* op, const char* what, int64_t v) {
  TORCH_CHECK_VALUE(v <= std::numeric_limits<int>::max() - 4096, op, ": ", what, "=", v,
                    " is too large for the CUDA kernels");
}

at::Tensor col_norms_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& attention_mask) {
  check_float_tensor("col_norms", "x", x_);
  TORCH_CHECK_VALUE(x_.dim() == 2 || x_.dim() == 3,
                    "col_norms: x must be (T, d_in) or (B, T, d_in), got ", x_.sizes());
  const at::Tensor x = x_.contiguous();
  const bool batched = x.dim() == 3;
  const int64_t B = batched ? x.size(0) : 1, T = x.size(-2), d = x.size(-1);
  check_int_range("col_norms", "B", B);
  TORCH_CHECK_VALUE(d <= 65535LL * 32, "col_norms: d_in=", d, " is too large for the CUDA kernel");
  at::Tensor keep;
  if (attention_mask) {
    TORCH_CHECK_VALUE(attention_mask->sizes() == x.sizes().slice(0, x.dim() - 1),
                      "col_norms: attention_mask must have shape ", x.sizes().slice(0, x.dim() - 1),
                      ", got ", attention_mask->sizes());
    check_same_device("col_norms", x, "x", *attention_mask, "attention_mask");
    keep = attention_mask->ne(0).to(at::kByte).contiguous();
  }
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({B, d}, x.options().dtype(at::kFloat));
  launch_col_norms(dtype_of(x), x.const_data_ptr(), keep.defined() ? keep.const_data_ptr<uint8_t>() : nullptr,
                   out.mutable_data_ptr<float>(), B, T, d, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK_VALUE(at::isfinite(out).all().item<bool>(),
                    "col_norms: x contains NaN or Inf (or values whose squares overflow float32)");
  return batched ? out : out.squeeze(0);
}

// The checked, contiguous inputs of the three selection ops.
struct Selection {
  at::Tensor weight, norms;
  int64_t B, d_out, d;
};

Selection prepare_selection(const char* op, const at::Tensor& weight_, const at::Tensor& norms_,
                            int64_t k, int64_t m, bool check_norms = true) {
  check_weight_norms_k(op, weight_, norms_, k);
  check_group(op, weight_.size(1), k, m);
  Selection s{weight_.contiguous(), norms_.contiguous(), 0, weight_.size(0), weight_.size(1)};
  s.B = s.norms.dim() == 2 ? s.norms.size(0) : 1;
  check_int_range(op, "d_in", s.d);
  check_int_range(op, "B*d_out", s.B * s.d_out);
  // NaN/Inf weights would give a silent mask (a NaN key sorts above every score): refused, in the
  // same read-back as the norms' check (one sync). wanda_linear skips the norms (col_norms checked
  // them) but not the weight.
  at::Tensor ok = at::isfinite(s.weight).all();
  if (check_norms) ok = ok.logical_and(at::logical_and(at::isfinite(s.norms), s.norms.ge(0)).all());
  if (!ok.item<bool>()) {
    TORCH_CHECK_VALUE(at::isfinite(s.weight).all().item<bool>(), op,
                      ": weight contains NaN or Inf; Wanda scores need finite weights");
    check_norms_valid(op, s.norms);
  }
  return s;
}

void run_selection(const Selection& s, Emit emit, int64_t k, at::Tensor& out, at::Tensor* bitmap) {
  launch_select_rows(dtype_of(s.weight), emit, s.weight.const_data_ptr(), s.norms.const_data_ptr<float>(),
                     s.B, s.d_out, s.d, k, out.mutable_data_ptr(),
                     bitmap ? reinterpret_cast<uint32_t*>(bitmap->mutable_data_ptr<int32_t>()) : nullptr,
                     at::cuda::getCurrentCUDAStream());
}

// m > 0 (N:M groups) goes through the ATen composite of nm.h: no N:M kernel of our own yet.
at::Tensor wanda_mask_cuda(const at::Tensor& weight, const at::Tensor& norms, int64_t k, int64_t m) {
  const Selection s = prepare_selection("wanda_mask", weight, norms, k, m);
  const c10::cuda::CUDAGuard guard(s.weight.device());
  if (m > 0) return nm_mask(s.weight, s.norms, k, m);
  at::Tensor out = at::empty(batch_shape(s.norms, {s.d_out, s.d}), s.weight.options().dtype(at::kBool));
  run_selection(s, Emit::mask, k, out, nullptr);
  return out;
}

at::Tensor wanda_prune_cuda(const at::Tensor& weight, const at::Tensor& norms, int64_t k,
                            bool check_norms, int64_t m) {
  const Selection s = prepare_selection("wanda_prune", weight, norms, k, m, check_norms);
  const c10::cuda::CUDAGuard guard(s.weight.device());
  if (m > 0) return apply_mask(s.weight, nm_mask(s.weight, s.norms, k, m));
  at::Tensor out = at::empty(batch_shape(s.norms, {s.d_out, s.d}), s.weight.options());
  run_selection(s, Emit::pruned, k, out, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> prune_rows_cuda(const at::Tensor& weight, const at::Tensor& norms,
                                                   int64_t k, int64_t m) {
  const Selection s = prepare_selection("prune_rows", weight, norms, k, m);
  const c10::cuda::CUDAGuard guard(s.weight.device());
  if (m > 0) return compact_of_mask(s.weight, nm_mask(s.weight, s.norms, k, m), k);
  const int64_t words = (s.d + 31) / 32;
  at::Tensor bitmap = at::empty(batch_shape(s.norms, {s.d_out, words}), s.weight.options().dtype(at::kInt));
  at::Tensor values = at::empty(batch_shape(s.norms, {s.d_out, k}), s.weight.options());
  run_selection(s, Emit::compact, k, values, &bitmap);
  return {bitmap, values};
}

// Output (B, T, d_out) of a small-T kernel for x (B?, T, d_in), squeezed back for 2-D x.
at::Tensor small_t_output(const at::Tensor& x, int64_t d_out) {
  return at::empty({x.dim() == 3 ? x.size(0) : 1, x.size(-2), d_out}, x.options());
}

at::Tensor masked_linear_cuda(const at::Tensor& x_, const at::Tensor& weight_, const at::Tensor& mask_,
                              const std::optional<at::Tensor>& bias_) {
  check_masked_linear_args(x_, weight_, mask_, bias_);
  const c10::cuda::CUDAGuard guard(x_.device());
  check_int_range("masked_linear", "d_in", weight_.size(1));
  const at::Tensor weight = weight_.contiguous(), mask = mask_.contiguous();
  if (x_.size(-2) > kMaxGemvTokens) {
    const at::Tensor wm = at::where(mask, weight, at::zeros({}, weight.options()));
    return dense_linear(x_, wm, bias_);
  }
  const at::Tensor x = x_.contiguous();
  const at::Tensor bias = bias_ ? bias_->contiguous() : at::Tensor();
  const int64_t d_out = weight.size(0), d = weight.size(1);
  at::Tensor y = small_t_output(x, d_out);
  launch_masked_gemv(dtype_of(x), x.const_data_ptr(), weight.const_data_ptr(), mask.const_data_ptr<bool>(),
                     mask.dim() == 3, bias.defined() ? bias.const_data_ptr() : nullptr, y.mutable_data_ptr(),
                     y.size(0), x.size(-2), d_out, d, at::cuda::getCurrentCUDAStream());
  return x.dim() == 3 ? y : y.squeeze(0);
}

at::Tensor sparse_linear_cuda(const at::Tensor& x_, const at::Tensor& bitmap_, const at::Tensor& values_,
                              int64_t d_in, const std::optional<at::Tensor>& bias_) {
  check_sparse_linear_args(x_, bitmap_, values_, d_in, bias_);
  check_int_range("sparse_linear", "d_in", d_in);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor bitmap = bitmap_.contiguous(), values = values_.contiguous();
  const int64_t d_out = values.size(-2), k = values.size(-1);
  const auto* bp = reinterpret_cast<const uint32_t*>(bitmap.const_data_ptr<int32_t>());
  const auto stream = at::cuda::getCurrentCUDAStream();
  if (x_.size(-2) > kMaxGemvTokens) {
    std::vector<int64_t> shape(values.sizes().begin(), values.sizes().end());
    shape.back() = d_in;
    at::Tensor dense = at::empty(shape, values.options());
    launch_expand_rows(dtype_of(values), bp, values.const_data_ptr(), values.numel() / k, d_in, k,
                       dense.mutable_data_ptr(), stream);
    return dense_linear(x_, dense, bias_);
  }
  const at::Tensor x = x_.contiguous();
  const at::Tensor bias = bias_ ? bias_->contiguous() : at::Tensor();
  at::Tensor y = small_t_output(x, d_out);
  launch_sparse_gemv(dtype_of(x), x.const_data_ptr(), bp, values.const_data_ptr(), values.dim() == 3,
                     bias.defined() ? bias.const_data_ptr() : nullptr, y.mutable_data_ptr(), y.size(0),
                     x.size(-2), d_out, d_in, k, stream);
  return x.dim() == 3 ? y : y.squeeze(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CUDA, m) {
  m.impl("col_norms", &col_norms_cuda);
  m.impl("wanda_mask", &wanda_mask_cuda);
  m.impl("wanda_prune", &wanda_prune_cuda);
  m.impl("prune_rows", &prune_rows_cuda);
  m.impl("masked_linear", &masked_linear_cuda);
  m.impl("sparse_linear", &sparse_linear_cuda);
}

}  // namespace mumoe::cuda
