// Large CPU outputs and temporaries come from a small pool of reused buffers. On the VMs we run on
// a fresh 64 MiB tensor costs ~90 ms of first-touch page faults (glibc mmaps every block above
// 32 MiB and unmaps it on free), more than the selection that fills it.
#pragma once
#include <ATen/ATen.h>

namespace mumoe::cpu {
// at::empty(sizes, options) for small tensors; from 128 KiB, a tensor backed by a pooled buffer
// that returns to the pool when the tensor is freed. The idle bytes kept are capped by
// MUMOE_CPU_POOL_MB (0 disables the pool) or, unset, by the most bytes ever live at once (at least
// 256 MiB): what a caching allocator keeps, so the next prompt's compact weights reuse the last's.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Frees every idle buffer and restarts the peak from the bytes live now (mumoe_ext.empty_cache()).
void pool_empty_cache();

struct PoolStats {
  size_t live_bytes, idle_bytes, peak_live_bytes, cap_bytes;
};
PoolStats pool_stats();
}  // namespace mumoe::cpu
