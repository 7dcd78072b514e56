// Rows split into small chunks handed out on demand. With at::parallel_for's static halves, one
// thread descheduled on a shared machine stalls half the work; here it delays only its chunk.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <atomic>

namespace mumoe::cpu {

// body(begin, end) for consecutive row ranges of at most `chunk` rows covering [0, n).
template <class Body>
void parallel_rows(int64_t n, int64_t chunk, const Body& body) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || at::in_parallel_region()) return body(0, n);
  std::atomic<int64_t> next{0};
  // at::parallel_for does not carry the caller's thread-local state (inference / no-grad mode,
  // dispatch key guards) to its workers; a body that calls ATen (the blocked GEMM) needs it, or
  // writing into a tensor made under torch.inference_mode() raises on every worker thread.
  const at::ThreadLocalState caller;
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    const at::ThreadLocalStateGuard same_state_as_caller(caller);
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1))
      body(c * chunk, std::min(n, (c + 1) * chunk));
  });
}

}  // namespace mumoe::cpu
