#include "cpu/buffer_pool.h"

#include <algorithm>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace mumoe::cpu {
namespace {

// Below this malloc reuses blocks itself. Not 4 MiB: a small model's compact weights (SmolLM2-135M,
// 114 MiB in 210 tensors of 0.1-1 MiB) then paid their page faults on every prompt, ~15 ms of a
// 230 ms prefill.
constexpr size_t kMinPooledBytes = size_t(128) << 10;
constexpr size_t kAlign = 4096;

constexpr size_t kAuto = ~size_t(0);

// Pool buffers come straight from the OS, not from malloc: long-lived buffers of 0.1-4 MiB in
// malloc's heap pinned it, and the activations torch allocates around them then paid fresh pages
// (a 1.1B model's prefill 880 -> 1000-1150 ms when the pool took tensors from 128 KiB that way).
// Buffers of 2 MiB and more start on a 2 MiB boundary and ask for transparent huge pages (honoured
// where THP is `always` or `madvise`, the common default): a decode step streams every compact
// weight once, and with 4 KiB pages each one is a TLB miss (TinyLlama shape on the AMX Xeon:
// decode 77.2 -> 73.6 ms a token in generate, 6 of 6 alternating rounds; docs/generation.md).
constexpr size_t kHugePage = size_t(2) << 20;

void* map_pages(size_t bytes) {
#if defined(__unix__) || defined(__APPLE__)
  const bool huge = bytes >= kHugePage;
  const size_t span = huge ? bytes + kHugePage : bytes;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (!huge) return p;
  // Keep the 2 MiB-aligned `bytes` inside the span; unmap the slack before and after it.
  char* const start = static_cast<char*>(p);
  char* const aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(start) + kHugePage - 1) &
                                                ~uintptr_t(kHugePage - 1));
  if (aligned > start) munmap(start, size_t(aligned - start));
  char* const end = aligned + bytes;
  if (start + span > end) munmap(end, size_t(start + span - end));
#ifdef MADV_HUGEPAGE
  madvise(aligned, bytes, MADV_HUGEPAGE);  // advice only: THP `never` leaves 4 KiB pages
#endif
  return aligned;
#else
  return std::aligned_alloc(kAlign, bytes);
#endif
}

void unmap_pages(void* p, size_t bytes) {
#if defined(__unix__) || defined(__APPLE__)
  munmap(p, bytes);
#else
  (void)bytes;
  std::free(p);
#endif
}

// MUMOE_CPU_POOL_MB, or kAuto when unset.
size_t configured_cap() {
  static const size_t cap = [] {
    const char* env = std::getenv("MUMOE_CPU_POOL_MB");
    return env && *env ? size_t(std::strtoull(env, nullptr, 10)) << 20 : kAuto;
  }();
  return cap;
}

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> idle;         // capacity -> buffer
  std::unordered_map<void*, size_t> capacity;  // every live or idle buffer
  size_t idle_bytes = 0, live_bytes = 0, peak_live_bytes = 0;

  // Idle bytes kept: MUMOE_CPU_POOL_MB, or by default as much as was ever live at once (so a
  // process never holds more than its own peak: the next prompt of the same model reuses every
  // buffer the last one freed, and pays no page faults), at least 256 MiB.
  size_t cap() const {
    const size_t c = configured_cap();
    return c != kAuto ? c : std::max(size_t(256) << 20, peak_live_bytes);
  }

  void trim(size_t keep) {  // drop the largest idle buffers until at most `keep` bytes are idle
    while (idle_bytes > keep && !idle.empty()) {
      auto last = std::prev(idle.end());
      idle_bytes -= last->first;
      capacity.erase(last->second);
      unmap_pages(last->second, last->first);
      idle.erase(last);
    }
  }

  void* take(size_t cap) {
    {
      std::lock_guard<std::mutex> g(mu);
      auto it = idle.find(cap);
      if (it != idle.end()) {
        void* p = it->second;
        idle.erase(it);
        idle_bytes -= cap;
        live_bytes += cap;
        return p;
      }
    }
    void* p = map_pages(cap);
    TORCH_CHECK(p, "mumoe: out of memory allocating ", cap, " bytes");
    std::lock_guard<std::mutex> g(mu);
    capacity[p] = cap;
    live_bytes += cap;
    peak_live_bytes = std::max(peak_live_bytes, live_bytes);
    return p;
  }

  void give_back(void* p) {
    std::lock_guard<std::mutex> g(mu);
    const size_t cap = capacity.at(p);
    idle.emplace(cap, p);
    idle_bytes += cap;
    live_bytes -= cap;
    trim(this->cap());
  }
};

// Never destroyed: tensors freed during interpreter shutdown still give their buffers back.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = size_t(numel) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  if (bytes < kMinPooledBytes || configured_cap() == 0) return at::empty(sizes, options);
  const size_t cap = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = pool().take(cap);
  return at::from_blob(p, sizes, [](void* q) { pool().give_back(q); }, options);
}

void pool_empty_cache() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mu);
  p.trim(0);
  p.peak_live_bytes = p.live_bytes;
}

PoolStats pool_stats() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mu);
  return {p.live_bytes, p.idle_bytes, p.peak_live_bytes, p.cap()};
}

}  // namespace mumoe::cpu
