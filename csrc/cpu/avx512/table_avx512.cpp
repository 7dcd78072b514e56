// The avx512 kernel table (the kernels live beside this file), with the optional AVX512-BF16 +
// VBMI2 kernel where the CPU has those extensions.
#include "cpu/cpu_features.h"
#include "cpu/kernel_decls.h"

namespace mumoe::cpu::avx512 {
MUMOE_DECLARE_CPU_KERNELS()
// sparse_dot_bf16_avx512.cpp
void sparse_dot_bf16_vbmi2(const uint16_t* x, int64_t T, const uint32_t* bitmap,
                           const uint16_t* values, int64_t d, int64_t k, float* out);
}  // namespace mumoe::cpu::avx512

namespace mumoe::cpu {
const CpuKernels kAvx512Kernels = [] {
  CpuKernels t = MUMOE_CPU_KERNEL_TABLE(avx512, "avx512");
  if (cpu_features().avx512_vbmi2_bf16) t.sparse_dot_bf16 = avx512::sparse_dot_bf16_vbmi2;
  return t;
}();
}  // namespace mumoe::cpu
