// TORCH_LIBRARY_IMPL(mumoe, CPU): argument checks, contiguity, threading over rows, dispatch to the
// kernel table chosen in dispatch.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "checks.h"
#include "nm.h"
#include "op_common.h"
#include "cpu/buffer_pool.h"
#include "cpu/col_stats.h"
#include "cpu/dispatch.h"
#include "cpu/parallel_rows.h"
#include "cpu/row_selector.h"
#include "cpu/select_rows.h"

namespace mumoe::cpu {
namespace {

const char* bytes(const at::Tensor& t) { return static_cast<const char*>(t.const_data_ptr()); }
char* bytes_mut(at::Tensor& t) { return static_cast<char*>(t.mutable_data_ptr()); }

at::Tensor col_norms_cpu(const at::Tensor& x_, const std::optional<at::Tensor>& attention_mask) {
  check_float_tensor("col_norms", "x", x_);
  TORCH_CHECK_VALUE(x_.dim() == 2 || x_.dim() == 3,
                    "col_norms: x must be (T, d_in) or (B, T, d_in), got ", x_.sizes());
  const at::Tensor x = x_.contiguous();
  const bool batched = x.dim() == 3;
  const int64_t B = batched ? x.size(0) : 1, T = x.size(-2), d = x.size(-1);
  const at::Tensor keep = keep_bytes(x, attention_mask, "col_norms");
  at::Tensor out = at::zeros({B, d}, x.options().dtype(at::kFloat));
  col_moments(x.reshape({B, T, d}), keep.defined() ? keep.const_data_ptr<uint8_t>() : nullptr,
              nullptr, /*square=*/true, out.mutable_data_ptr<float>());
  finish_norms(out.mutable_data_ptr<float>(), B * d, "col_norms");
  return batched ? out : out.squeeze(0);
}

at::Tensor wanda_mask_cpu(const at::Tensor& weight_, const at::Tensor& norms_, int64_t k, int64_t m) {
  check_weight_norms_k("wanda_mask", weight_, norms_, k);
  check_group("wanda_mask", weight_.size(1), k, m);
  const at::Tensor weight = weight_.contiguous(), norms = norms_.contiguous();
  check_norms_valid("wanda_mask", norms);
  at::Tensor out = pooled_empty(batch_shape(norms, {weight.size(0), weight.size(1)}),
                                weight.options().dtype(at::kBool));
  select_rows(weight, norms, k, {.mask = reinterpret_cast<uint8_t*>(out.mutable_data_ptr<bool>()), .op = "wanda_mask"}, m);
  return out;
}

at::Tensor wanda_prune_cpu(const at::Tensor& weight_, const at::Tensor& norms_, int64_t k,
                           bool check_norms, int64_t m) {
  check_weight_norms_k("wanda_prune", weight_, norms_, k);
  check_group("wanda_prune", weight_.size(1), k, m);
  const at::Tensor weight = weight_.contiguous(), norms = norms_.contiguous();
  if (check_norms) check_norms_valid("wanda_prune", norms);
  at::Tensor out = pooled_empty(batch_shape(norms, {weight.size(0), weight.size(1)}), weight.options());
  select_rows(weight, norms, k, {.pruned = bytes_mut(out), .op = "wanda_prune"}, m);
  return out;
}

std::tuple<at::Tensor, at::Tensor> prune_rows_cpu(const at::Tensor& weight_, const at::Tensor& norms_,
                                                  int64_t k, int64_t m) {
  check_weight_norms_k("prune_rows", weight_, norms_, k);
  check_group("prune_rows", weight_.size(1), k, m);
  const at::Tensor weight = weight_.contiguous(), norms = norms_.contiguous();
  check_norms_valid("prune_rows", norms);
  const int64_t words = (weight.size(1) + 31) / 32;
  at::Tensor bitmap = pooled_empty(batch_shape(norms, {weight.size(0), words}),
                                   weight.options().dtype(at::kInt));
  at::Tensor values = pooled_empty(batch_shape(norms, {weight.size(0), k}), weight.options());
  select_rows(weight, norms, k, {.bitmap = reinterpret_cast<uint32_t*>(bitmap.mutable_data_ptr<int32_t>()),
                                  .values = bytes_mut(values), .op = "prune_rows"}, m);
  return {bitmap, values};
}

// Per-sample product of x (B?, T, d_in) with B? weight row sets, computed by
// `row_dot(b, i, tokens of sample b, T, out)` from `tokens`: x as the kernel wants it, contiguous.
// Writes y in the output's dtype straight from the fp32 accumulator (one rounding, as .to() would).
template <class Out>
inline void store(Out* p, float v) { *p = Out(v); }

template <class Out, class RowDot>
void small_t_rows(const char* xp, int64_t sample_bytes, int64_t B, int64_t T, int64_t d_out,
                  int64_t n_weights, const at::Tensor& bias, Out* op, const RowDot& row_dot) {
  const bool has_bias = bias.defined();
  // Each thread streams its own slice of rows front to back (see parallel_rows_sliced).
  const int64_t rows = B * d_out;
  parallel_rows_sliced(rows, 64, [&](int64_t s, int64_t e) {
    float acc[kSmallT];
    for (int64_t r = s; r < e; ++r) {
      const int64_t b = r / d_out, i = r % d_out;
      row_dot(n_weights == 1 ? 0 : b, i, xp + b * sample_bytes, T, acc);
      const float bi = has_bias ? float(bias.const_data_ptr<Out>()[i]) : 0.0f;
      for (int64_t t = 0; t < T; ++t) store(op + (b * T + t) * d_out + i, acc[t] + bi);
    }
  });
}

// Per-sample product of x (B?, T, d_in) with B? weight row sets, computed by
// `row_dot(b, i, tokens of sample b, T, out)` from `tokens`: x as the kernel wants it, contiguous.
template <class RowDot>
at::Tensor small_t_linear(const at::Tensor& x, const at::Tensor& tokens, int64_t d_out,
                          int64_t n_weights, const std::optional<at::Tensor>& bias, RowDot row_dot) {
  const bool batched = x.dim() == 3;
  const int64_t B = batched ? x.size(0) : 1, T = x.size(-2), d = x.size(-1);
  at::Tensor out = at::empty({B, T, d_out}, x.options());
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  const char* xp = bytes(tokens);
  const int64_t sample_bytes = T * d * tokens.element_size();
  switch (x.scalar_type()) {
    case at::kFloat:
      small_t_rows(xp, sample_bytes, B, T, d_out, n_weights, b, out.mutable_data_ptr<float>(), row_dot);
      break;
    case at::kHalf:
      small_t_rows(xp, sample_bytes, B, T, d_out, n_weights, b, out.mutable_data_ptr<at::Half>(), row_dot);
      break;
    default:
      small_t_rows(xp, sample_bytes, B, T, d_out, n_weights, b, out.mutable_data_ptr<at::BFloat16>(), row_dot);
  }
  return batched ? out : out.squeeze(0);
}

at::Tensor float_tokens(const at::Tensor& x) { return x.to(at::kFloat).contiguous(); }
const float* as_floats(const char* p) { return reinterpret_cast<const float*>(p); }

at::Tensor masked_linear_cpu(const at::Tensor& x_, const at::Tensor& weight_, const at::Tensor& mask_,
                             const std::optional<at::Tensor>& bias) {
  check_masked_linear_args(x_, weight_, mask_, bias);
  const at::Tensor weight = weight_.contiguous(), mask = mask_.contiguous();
  const int64_t d_out = weight.size(0), d = weight.size(1), es = weight.element_size();
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(weight);
  const uint8_t* mp = reinterpret_cast<const uint8_t*>(mask.const_data_ptr<bool>());
  const char* wp = bytes(weight);
  if (x_.size(-2) <= kSmallT) {
    return small_t_linear(x_, float_tokens(x_), d_out, mask.dim() == 3 ? mask.size(0) : 1, bias,
                          [&](int64_t b, int64_t i, const char* xs, int64_t T, float* acc) {
                            K.masked_dot(as_floats(xs), T, wp + es * i * d, dt,
                                         mp + (b * d_out + i) * d, d, acc);
                          });
  }
  at::Tensor wm = pooled_empty(mask.sizes(), weight.options());
  char* op = bytes_mut(wm);
  parallel_rows(mask.numel() / d, 64, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) K.apply_mask(wp + es * (r % d_out) * d, dt, mp + r * d, d, op + es * r * d);
  });
  return dense_linear(x_, wm, bias);
}

at::Tensor sparse_linear_cpu(const at::Tensor& x_, const at::Tensor& bitmap_, const at::Tensor& values_,
                             int64_t d_in, const std::optional<at::Tensor>& bias) {
  check_sparse_linear_args(x_, bitmap_, values_, d_in, bias);
  const int64_t words = (d_in + 31) / 32;
  const at::Tensor bitmap = bitmap_.contiguous(), values = values_.contiguous();
  const int64_t d_out = values.size(-2), k = values.size(-1), es = values.element_size();
  const CpuKernels& K = kernels();
  const DType dt = dtype_of(values);
  const uint32_t* bp = reinterpret_cast<const uint32_t*>(bitmap.const_data_ptr<int32_t>());
  const char* vp = bytes(values);
  if (x_.size(-2) <= kSmallT) {
    const int64_t n_weights = values.dim() == 3 ? values.size(0) : 1;
    if (dt == DType::bf16 && K.sparse_dot_bf16) {  // the tokens stay bf16 (x has the values' dtype)
      const uint16_t* v16 = reinterpret_cast<const uint16_t*>(vp);
      return small_t_linear(x_, x_.contiguous(), d_out, n_weights, bias,
                            [&](int64_t b, int64_t i, const char* xs, int64_t T, float* acc) {
                              const int64_t r = b * d_out + i;
                              K.sparse_dot_bf16(reinterpret_cast<const uint16_t*>(xs), T,
                                                bp + r * words, v16 + r * k, d_in, k, acc);
                            });
    }
    return small_t_linear(x_, float_tokens(x_), d_out, n_weights, bias,
                          [&](int64_t b, int64_t i, const char* xs, int64_t T, float* acc) {
                            const int64_t r = b * d_out + i;
                            K.sparse_dot(as_floats(xs), T, bp + r * words, vp + es * r * k, dt, d_in,
                                         k, acc);
                          });
  }
  std::vector<int64_t> shape(values.sizes().begin(), values.sizes().end());
  shape.back() = d_in;
  at::Tensor dense = pooled_empty(shape, values.options());
  char* op = bytes_mut(dense);
  parallel_rows(values.numel() / std::max<int64_t>(k, 1), 64, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) K.expand_compact(bp + r * words, vp + es * r * k, dt, d_in, k, op + es * r * d_in);
  });
  return dense_linear(x_, dense, bias);
}

}  // namespace

TORCH_LIBRARY_IMPL(mumoe, CPU, m) {
  m.impl("col_norms", &col_norms_cpu);
  m.impl("wanda_mask", &wanda_mask_cpu);
  m.impl("wanda_prune", &wanda_prune_cpu);
  m.impl("prune_rows", &prune_rows_cpu);
  m.impl("masked_linear", &masked_linear_cpu);
  m.impl("sparse_linear", &sparse_linear_cpu);
}

}  // namespace mumoe::cpu
