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
inline at::Tensor call_wanda_prune_unchecked(const at::Tensor& w, const at::Tensor& norms, int64_t k) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mumoe::wanda_prune", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, bool)>();
  return op.call(w, norms, k, false);
}

}  // namespace mumoe
