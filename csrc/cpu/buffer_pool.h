// Large CPU outputs and temporaries come from a small pool of reused buffers. On the VMs we run on
// a fresh 64 MiB tensor costs ~90 ms of first-touch page faults (glibc mmaps every block above
// 32 MiB and unmaps it on free), more than the selection that fills it.
#pragma once
#include <ATen/ATen.h>

namespace mumoe::cpu {
// at::empty(sizes, options) for small tensors; above a few MiB, a tensor backed by a pooled buffer
// that returns to the pool when the tensor is freed. MUMOE_CPU_POOL_MB caps the idle bytes kept
// (default 256; 0 disables the pool).
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);
}  // namespace mumoe::cpu
