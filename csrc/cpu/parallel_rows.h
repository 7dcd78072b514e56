// Rows split into small chunks handed out on demand. With at::parallel_for's static halves, one
// thread descheduled on a shared machine stalls half the work; here it delays only its chunk.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

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

// body(begin, end) over [0, n) in chunks of at most `chunk` rows, each thread walking its own
// contiguous slice front to back, so the weight stream a thread reads stays one sequential run
// (a loop of the decode GEMV streamed 7% slower with chunks of 512 rows handed out in turn, 16%
// with 64, than with one half per thread; docs/generation.md). A thread that finishes its slice
// takes the remaining chunks of the others from their back ends, so one thread descheduled on a
// shared machine still delays only its current chunk.
template <class Body>
void parallel_rows_sliced(int64_t n, int64_t chunk, const Body& body) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || at::in_parallel_region() || chunks > INT32_MAX) return body(0, n);
  // Slice t's remaining chunks [front, back) packed in one word, so that the owner taking the
  // front and a thief taking the back never both take the last one.
  struct alignas(64) Slice { std::atomic<uint64_t> range; };
  std::vector<Slice> slices(threads);
  for (int64_t t = 0; t < threads; ++t) {
    const uint64_t front = uint64_t(chunks * t / threads), back = uint64_t(chunks * (t + 1) / threads);
    slices[t].range.store(front | back << 32, std::memory_order_relaxed);
  }
  const auto take = [&](int64_t t, bool from_front) -> int64_t {
    uint64_t r = slices[t].range.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t front = r & 0xffffffffu, back = r >> 32;
      if (front >= back) return -1;
      const uint64_t next = from_front ? (front + 1) | back << 32 : front | (back - 1) << 32;
      if (slices[t].range.compare_exchange_weak(r, next, std::memory_order_relaxed))
        return int64_t(from_front ? front : back - 1);
    }
  };
  const at::ThreadLocalState caller;  // see parallel_rows
  at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
    const at::ThreadLocalStateGuard same_state_as_caller(caller);
    for (int64_t own = t0; own < t1; ++own)
      for (int64_t c = take(own, true); c >= 0; c = take(own, true))
        body(c * chunk, std::min(n, (c + 1) * chunk));
    for (int64_t i = 1; i < threads; ++i) {
      const int64_t other = (t0 + i) % threads;
      for (int64_t c = take(other, false); c >= 0; c = take(other, false))
        body(c * chunk, std::min(n, (c + 1) * chunk));
    }
  });
}

}  // namespace mumoe::cpu
