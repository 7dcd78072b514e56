// Calls of our own ops through the dispatcher, for ops built from other ops (any device).
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace mumoe {

inline at::Tensor call_col_norms(const at::Tensor& x, const std::optional<at::Tensor>& am) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::col_norms", "")
                       .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&)>();
  return op.call(x, am);
}

// col_norms has already refused non-finite norms, and they are non-negative by construction.
inline at::Tensor call_wanda_prune_unchecked(const at::Tensor& w, const at::Tensor& norms, int64_t k,
                                             int64_t m = 0) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::wanda_prune", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool, int64_t)>();
  return op.call(w, norms, k, false, m);
}

inline at::Tensor call_sparse_linear(const at::Tensor& x, const at::Tensor& bitmap,
                                     const at::Tensor& values, int64_t d_in,
                                     const std::optional<at::Tensor>& bias) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::sparse_linear", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         int64_t, const std::optional<at::Tensor>&)>();
  return op.call(x, bitmap, values, d_in, bias);
}

inline at::Tensor call_wanda_mask(const at::Tensor& w, const at::Tensor& norms, int64_t k, int64_t m = 0) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::wanda_mask", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>();
  return op.call(w, norms, k, m);
}

inline std::tuple<at::Tensor, at::Tensor> call_prune_rows(const at::Tensor& w, const at::Tensor& norms,
                                                          int64_t k, int64_t m = 0) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::prune_rows", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>();
  return op.call(w, norms, k, m);
}

}  // namespace mumoe
