#include "cpu/buffer_pool.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

namespace mumoe::cpu {
namespace {

constexpr size_t kMinPooledBytes = size_t(4) << 20;  // below this malloc already reuses blocks
constexpr size_t kAlign = 4096;

size_t idle_cap_bytes() {
  static const size_t cap = [] {
    const char* env = std::getenv("MUMOE_CPU_POOL_MB");
    return size_t(env && *env ? std::strtoull(env, nullptr, 10) : 256) << 20;
  }();
  return cap;
}

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> idle;         // capacity -> buffer
  std::unordered_map<void*, size_t> capacity;  // every live or idle buffer
  size_t idle_bytes = 0;

  void* take(size_t cap) {
    {
      std::lock_guard<std::mutex> g(mu);
      auto it = idle.find(cap);
      if (it != idle.end()) {
        void* p = it->second;
        idle.erase(it);
        idle_bytes -= cap;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, cap);
    TORCH_CHECK(p, "mumoe: out of memory allocating ", cap, " bytes");
    std::lock_guard<std::mutex> g(mu);
    capacity[p] = cap;
    return p;
  }

  void give_back(void* p) {
    std::lock_guard<std::mutex> g(mu);
    const size_t cap = capacity.at(p);
    idle.emplace(cap, p);
    idle_bytes += cap;
    while (idle_bytes > idle_cap_bytes() && !idle.empty()) {  // drop the largest idle buffers
      auto last = std::prev(idle.end());
      idle_bytes -= last->first;
      capacity.erase(last->second);
      std::free(last->second);
      idle.erase(last);
    }
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
  if (bytes < kMinPooledBytes || idle_cap_bytes() == 0) return at::empty(sizes, options);
  const size_t cap = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = pool().take(cap);
  return at::from_blob(p, sizes, [](void* q) { pool().give_back(q); }, options);
}

}  // namespace mumoe::cpu
